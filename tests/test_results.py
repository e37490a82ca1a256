"""Run ids, the result store (atomic writes, corrupt files), get_or_run and result tables."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import seqnb.grid as grid_mod
import seqnb.results as results_mod
from seqnb.cli import _config_from_args, build_parser
from seqnb.config import LABEL_KEYS, MODELS, RunConfig
from seqnb.data import from_sequences, list_datasets
from seqnb.grid import run_grid
from seqnb.results import (
    CorruptResultError,
    MissingResultError,
    ResultStore,
    aggregate_seeds,
    command_for,
    get_or_run,
    load_run_dataset,
    results_frame,
)

# A tiny run: seconds on a CPU (the first one in a process pays for torch's lazy imports).
TINY = dict(
    maxlen=5, num_blocks=1, embedding_dim=8, epochs=1, batch_size=16, eval_every=1, device="cpu"
)


def tiny_sequences(users: int = 30, items: int = 20, length: int = 8) -> list[list[int]]:
    rng = np.random.default_rng(0)
    return [[int(i) for i in rng.integers(1, items + 1, size=length)] for _ in range(users)]


def write_csv(path: Path, users: int = 30) -> Path:
    """A generic ``user,item,timestamp`` file with a header."""
    lines = ["user,item,timestamp"]
    for u, seq in enumerate(tiny_sequences(users)):
        lines += [f"u{u},i{item},{1000 + t}" for t, item in enumerate(seq)]
    path.write_text("\n".join(lines) + "\n")
    return path


def fake_result(config: RunConfig, hr10: float = 0.5, **extra: object) -> dict:
    """A hand-made stored result with the documented top-level keys."""
    return {
        "run_id": config.run_id,
        "config": config.to_dict(),
        "valid_curve": [{"epoch": 1, "metrics": {"NDCG@10": hr10 / 2}}],
        "best_epoch": 1,
        "test": {
            "HR@1": hr10 / 4,
            "HR@5": hr10 / 2,
            "HR@10": hr10,
            "NDCG@5": hr10 / 3,
            "NDCG@10": hr10 / 2,
        },
        "provenance": {
            "device": "cpu",
            "started": "2024-01-01T00:00:00+00:00",
            "wall_seconds": 1.0,
            "epochs_run": 1,
        },
        **extra,
    }


# ----- run ids ---------------------------------------------------------------------------------
# Another valid value for every identity field (a new field must be added here).
ALTERNATIVES = {
    "dataset": "LastFM",
    "model": "zero_block",
    "loss": "bce",
    "maxlen": 51,
    "num_blocks": 3,
    "num_heads": 2,
    "embedding_dim": 32,
    "dropout": 0.5,
    "epochs": 99,
    "batch_size": 256,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "num_negatives": 2,
    "seed": 1,
    "eval_every": 1,
    "layout": "rolled",
    "rolled_window": 100,
    "smooth_band": (0, 3),
    "smooth_self_loops": False,
    "remove_seen": False,
    "precision": "bf16",
    "max_users": 300,
}


def test_same_config_same_id_and_key_order_is_irrelevant() -> None:
    """Equal configurations map to one id, however their keys are ordered."""
    base = RunConfig(dataset="Amazon2014Beauty_550_LOU", smooth_band=(1, 3), max_users=50)
    assert base.run_id == RunConfig(**base.to_dict()).run_id
    items = list(base.to_dict().items())
    for seed in range(5):
        random.Random(seed).shuffle(items)
        assert RunConfig.from_dict(dict(items)).run_id == base.run_id
    assert base.run_id.startswith("Amazon2014Beauty_550_LOU-sasrec-")


def test_every_identity_field_changes_the_id() -> None:
    """Changing any identity field gives a new id; the labels chapter/device do not."""
    base = RunConfig(dataset="Amazon2014Beauty_550_LOU")
    assert set(ALTERNATIVES) == set(base.identity())
    assert set(ALTERNATIVES) | set(LABEL_KEYS) == {f.name for f in fields(RunConfig)}
    ids = {base.run_id}
    for key, value in ALTERNATIVES.items():
        changed = base.with_(**{key: value})
        if key == "smooth_self_loops":  # it acts only with a band of trained items
            banded = base.with_(smooth_band=ALTERNATIVES["smooth_band"])
            changed = banded.with_(smooth_self_loops=value)
            assert changed.run_id != banded.run_id
        assert changed.run_id != base.run_id, key
        ids.add(changed.run_id)
    assert len(ids) == len(ALTERNATIVES) + 1
    for model in MODELS:  # also every model name (two of them are already in)
        ids.add(base.with_(model=model).run_id)
    assert len(ids) == len(ALTERNATIVES) + len(MODELS) - 1
    labelled = base.with_(chapter="shuffle", device="cuda:1")
    assert labelled.run_id == base.run_id


def test_numbers_are_canonical() -> None:
    """lr=1 and lr=1.0 (or YAML's string '1e-3') are the same run; a non-number is refused."""
    base = RunConfig(dataset="LastFM", lr=1.0, weight_decay=0.0, dropout=0.0)
    assert RunConfig(dataset="LastFM", lr=1, weight_decay=0, dropout=0).run_id == base.run_id
    assert (
        RunConfig(dataset="LastFM", lr="1e-3").run_id
        == RunConfig(dataset="LastFM", lr=0.001).run_id
    )
    with pytest.raises(ValueError, match="invalid lr='fast'"):
        RunConfig(dataset="LastFM", lr="fast")
    with pytest.raises(ValueError, match="allowed keys"):
        RunConfig.from_dict({"dataset": "LastFM", "learning_rate": 0.1})


def test_the_self_term_is_one_run_where_it_cannot_act() -> None:
    """Without a band, or with a band of never-trained items only, the self term changes
    nothing (test_models checks the tables), so both settings are one run; elsewhere they
    are two. A non-boolean is refused."""
    for band in (None, (0, 0)):
        off = RunConfig(dataset="LastFM", smooth_band=band, smooth_self_loops=False)
        assert off.smooth_self_loops is True
        assert off.run_id == RunConfig(dataset="LastFM", smooth_band=band).run_id
    off = RunConfig(dataset="LastFM", smooth_band=(0, 1), smooth_self_loops=False)
    assert off.run_id != RunConfig(dataset="LastFM", smooth_band=(0, 1)).run_id
    with pytest.raises(ValueError, match="invalid smooth_self_loops=0: expected true or false"):
        RunConfig(dataset="LastFM", smooth_band=(0, 1), smooth_self_loops=0)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dataset": ""}, "python -m seqnb datasets"),
        ({"layout": "diagonal"}, "'all_positions', 'rolled'"),
        ({"precision": "fp16"}, "'fp32', 'bf16'"),
        ({"epochs": True}, "positive integer"),
        ({"batch_size": 1.5}, "positive integer"),
        ({"num_blocks": -1}, "integer >= 0"),
        ({"dropout": 1.0}, "[0, 1)"),
        ({"lr": 0}, "positive number"),
        ({"weight_decay": -1e-3}, ">= 0"),
        ({"seed": "0"}, "an integer"),
        ({"max_users": 1}, "integer >= 2"),
        ({"smooth_band": (3, 1)}, "l <= u"),
        ({"smooth_band": (0, 3), "model": "stamp"}, "'sasrec' or 'mf_bpr'"),
        ({"layout": "rolled", "model": "mf_bpr"}, "'all_positions' for mf_bpr"),
    ],
)
def test_invalid_values_name_the_allowed_ones(changes: dict, message: str) -> None:
    """Impossible configurations fail at construction, saying what is allowed."""
    with pytest.raises(ValueError, match=re.escape(message)):
        RunConfig(**{"dataset": "LastFM", **changes})


def test_csv_ids_are_safe_file_names(tmp_path: Path) -> None:
    """A ``csv:PATH`` name gives a file-name-safe id whose hash covers the whole path."""
    a = RunConfig(dataset=f"csv:{tmp_path}/my data/a.csv")
    b = RunConfig(dataset=f"csv:{tmp_path}/my data:a.csv")
    assert "/" not in a.run_id and ":" not in a.run_id and " " not in a.run_id
    assert a.run_id != b.run_id


# ----- the store -------------------------------------------------------------------------------
def test_interrupted_write_keeps_the_old_result(tmp_path: Path, monkeypatch) -> None:
    """A save that fails mid-way leaves the old result readable and no temp file behind."""
    store = ResultStore(tmp_path)
    config = RunConfig(dataset="LastFM")
    store.save(fake_result(config, 0.25))

    def boom(*args: object) -> None:
        raise KeyboardInterrupt  # as if the run were stopped between write and rename

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        store.save(fake_result(config, 0.75), {"ranks": np.arange(3)})
    monkeypatch.undo()
    assert store.load(config.run_id)["test"]["HR@10"] == 0.25
    assert store.arrays(config.run_id) == {}
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [f"{config.run_id}.json"]
    assert [r["run_id"] for r in store.all()] == [config.run_id]


def test_killed_process_leaves_the_store_readable(tmp_path: Path) -> None:
    """A process killed after writing the temp file but before the rename (the worst moment)
    leaves the old result intact; the stray temp file is never taken for a result."""
    config = RunConfig(dataset="LastFM")
    store = ResultStore(tmp_path)
    store.save(fake_result(config, 0.25))
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from seqnb.results import ResultStore
        result = json.loads(sys.stdin.read())
        os.replace = lambda *a: os._exit(9)  # killed just before the rename
        ResultStore({str(tmp_path)!r}).save(result)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(fake_result(config, 0.75)),
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 9, proc.stderr
    leftovers = [p.name for p in (tmp_path / "runs").iterdir()]
    assert len(leftovers) == 2 and any(n.startswith(".") and n.endswith(".tmp") for n in leftovers)
    assert store.load(config.run_id)["test"]["HR@10"] == 0.25
    assert [r["run_id"] for r in store.all()] == [config.run_id]


@pytest.mark.parametrize(
    "content, reason",
    [
        (b'{"run_id": "x", "config": {"dataset": "LastFM"}, "te', "corrupt"),  # truncated
        (b"", "corrupt"),
        (b"\xff\xfe\x00garbage", "corrupt"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"config": {}, "provenance": {}}', "lacks the key 'test'"),
    ],
)
def test_corrupt_result_is_reported_with_its_path(
    tmp_path: Path, content: bytes, reason: str, monkeypatch
) -> None:
    """A truncated or malformed file raises CorruptResultError naming it; it is not trained
    over or loaded, and listing the store fails the same way."""
    store = ResultStore(tmp_path)
    config = RunConfig(dataset="LastFM")
    path = store.json_path(config.run_id)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(CorruptResultError, match=reason) as info:
        store.load(config.run_id)
    assert str(path) in str(info.value)
    with pytest.raises(CorruptResultError, match=re.escape(str(path))):
        store.all()
    monkeypatch.setattr(results_mod, "run", lambda *a, **k: pytest.fail("must not train"))
    with pytest.raises(CorruptResultError):
        get_or_run(config, train=True, root=tmp_path)
    assert path.read_bytes() == content


def test_corrupt_arrays_are_reported(tmp_path: Path) -> None:
    """A damaged .npz is reported with its path; a good one round-trips."""
    store = ResultStore(tmp_path)
    config = RunConfig(dataset="LastFM")
    store.save(fake_result(config), {"ranks": np.arange(5, dtype=np.uint8)})
    np.testing.assert_array_equal(store.arrays(config.run_id)["ranks"], np.arange(5))
    path = store.arrays_path(config.run_id)
    good = path.read_bytes()
    for bad in (b"PK\x03\x04 broken", good[: len(good) // 2]):
        path.write_bytes(bad)
        with pytest.raises(CorruptResultError, match=re.escape(str(path))):
            store.arrays(config.run_id)


# ----- get_or_run / run ------------------------------------------------------------------------
def test_missing_result_names_the_command(tmp_path: Path) -> None:
    """train=False on a missing run fails with a command that rebuilds exactly that config."""
    config = RunConfig(
        dataset="csv:/data/my file.csv",
        chapter="shuffle",
        smooth_band=(0, 3),
        remove_seen=False,
        lr=1e-3,
        max_users=40,
        **TINY,
    )
    with pytest.raises(MissingResultError) as info:
        get_or_run(config, train=False, root=tmp_path / "store")
    message = str(info.value)
    command = command_for(config, tmp_path / "store")
    assert command in message and config.run_id in message
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "seqnb", "run"]
    assert argv[argv.index("--results") + 1] == str((tmp_path / "store").resolve())
    args = build_parser().parse_args(argv[3:])
    rebuilt = _config_from_args(args, {})
    assert rebuilt == config and rebuilt.run_id == config.run_id
    assert "--results" not in command_for(config)  # the default store needs no flag


def test_get_or_run_trains_once_and_stores_the_documented_keys(tmp_path: Path, monkeypatch) -> None:
    """An in-memory data set trains once; the JSON has the documented keys and provenance;
    the second call loads it without training."""
    data = from_sequences("toy", tiny_sequences())
    config = RunConfig(dataset="toy", chapter="zero_block", max_users=20, **TINY)
    result = get_or_run(config, train=True, dataset=data, root=tmp_path, progress=False)
    stored = json.loads(ResultStore(tmp_path).json_path(config.run_id).read_text())
    assert stored == result
    for key in ("config", "valid_curve", "best_epoch", "test", "provenance"):
        assert key in stored
    assert {"chapter", "dataset", "model", "loss", "seed", "maxlen", "lr"} <= set(stored["config"])
    assert (
        stored["valid_curve"][0]["epoch"] == 1 and "NDCG@10" in stored["valid_curve"][0]["metrics"]
    )
    assert {"HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10"} <= set(stored["test"])
    assert {
        "seqnb_version",
        "git_commit",
        "device",
        "torch_version",
        "started",
        "wall_seconds",
        "epochs_run",
    } <= set(stored["provenance"])
    assert stored["dataset_stats"]["users"] == 20  # max_users subsamples the users
    assert ResultStore(tmp_path).arrays(config.run_id)  # per-user arrays stored beside it
    monkeypatch.setattr(results_mod, "run", lambda *a, **k: pytest.fail("must not retrain"))
    again = get_or_run(config.with_(chapter="shuffle", device="auto"), train=False, root=tmp_path)
    assert again == stored


def test_resumed_run_records_every_process_that_trained_it(tmp_path: Path, monkeypatch) -> None:
    """A run killed after its epoch-2 checkpoint and finished by a later process (another
    commit) stores both segments: epochs, commits, devices; its start is the first
    process's and its wall time the sum of both. The book's tables list both commits."""
    import torch

    data = from_sequences("tiny", tiny_sequences())
    config = RunConfig(dataset="tiny", **{**TINY, "epochs": 4, "eval_every": 2})
    steps = {"n": 0}
    original_step = torch.optim.Adam.step

    def step_then_die(self, *args, **kwargs):
        steps["n"] += 1
        if steps["n"] == 2 * per_epoch + 1:  # first step of epoch 3
            raise KeyboardInterrupt
        return original_step(self, *args, **kwargs)

    per_epoch = -(-len(tiny_sequences()) // TINY["batch_size"])
    monkeypatch.setattr(torch.optim.Adam, "step", step_then_die)
    monkeypatch.setattr(results_mod, "_git_commit", lambda: "a" * 40)
    with pytest.raises(KeyboardInterrupt):
        get_or_run(config, dataset=data, root=tmp_path, progress=False)
    monkeypatch.setattr(torch.optim.Adam, "step", original_step)
    monkeypatch.setattr(results_mod, "_git_commit", lambda: "b" * 40)
    result = get_or_run(config, dataset=data, root=tmp_path, progress=False)

    prov = result["provenance"]
    first, second = prov["segments"]
    assert (first["first_epoch"], first["last_epoch"], first["git_commit"]) == (1, 2, "a" * 40)
    assert (second["first_epoch"], second["last_epoch"], second["git_commit"]) == (3, 4, "b" * 40)
    assert prov["git_commit"] == "b" * 40 and prov["started"] == first["started"]
    assert prov["wall_seconds"] == pytest.approx(first["wall_seconds"] + second["wall_seconds"])
    assert [p["epoch"] for p in result["valid_curve"]] == [2, 4]
    row = results_frame([ResultStore(tmp_path).load(config.run_id)]).iloc[0]
    assert row["code_commits"] == ("a" * 40, "b" * 40)
    assert not list((tmp_path / "checkpoints").glob("*.resume.pt"))


def test_csv_dataset_leaves_the_registry_alone(tmp_path: Path) -> None:
    """``csv:PATH`` loads a user,item,timestamp file without registering it for good."""
    path = write_csv(tmp_path / "toy.csv")
    before = [s.name for s in list_datasets()]
    data = load_run_dataset(f"csv:{path}")
    assert (data.num_users, data.num_interactions) == (30, 240)
    assert [s.name for s in list_datasets()] == before
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_run_dataset(f"csv:{tmp_path}/nope.csv")


def test_local_grid_dedupes_and_survives_a_failure(tmp_path: Path, monkeypatch) -> None:
    """run_grid trains each run id once (chapters share runs), skips stored ones, and
    records a failed run without stopping; a bad backend fails before any work."""
    calls: list[str] = []

    def fake_run(config: RunConfig, store: ResultStore, progress: bool = True) -> dict:
        calls.append(config.run_id)
        if config.seed == 2:
            raise RuntimeError("out of memory")
        store.save(fake_result(config))
        return {}

    monkeypatch.setattr(grid_mod, "run", fake_run)
    a, b, bad = (RunConfig(dataset="LastFM", seed=s, chapter="zero_block") for s in (0, 1, 2))
    store = ResultStore(tmp_path)
    store.save(fake_result(b))
    summary = run_grid([a, a.with_(chapter="shuffle"), b, bad], root=tmp_path)
    assert calls == [a.run_id, bad.run_id]
    assert (summary["trained"], summary["skipped"], summary["failed"]) == (1, 2, 1)
    assert summary["errors"] == {bad.run_id: "RuntimeError: out of memory"}
    assert store.has(a) and not store.has(bad)
    with pytest.raises(ValueError, match="'local' or 'ray'"):
        run_grid([bad], root=tmp_path, backend="dask")
    assert calls == [a.run_id, bad.run_id]


# ----- tables ----------------------------------------------------------------------------------
def test_results_frame_and_seed_aggregation() -> None:
    """One row per run with metrics and extra tests as columns; seeds aggregate to
    mean/std/count per configuration."""
    hr = {(2, 0): 0.2, (2, 1): 0.4, (2, 2): 0.9, (1, 0): 0.3}
    runs = [
        fake_result(
            RunConfig(dataset="LastFM", num_blocks=b, seed=s),
            v,
            test_shuffled_window={"HR@10": v / 2},
        )
        for (b, s), v in hr.items()
    ]
    runs.append(fake_result(RunConfig(dataset="LastFM", smooth_band=(0, 3)), 0.1))
    frame = results_frame(runs)
    assert len(frame) == 5 and frame["run_id"].is_unique
    assert list(frame["HR@10"]) == [*hr.values(), 0.1]
    assert frame.loc[0, "test_shuffled_window:HR@10"] == 0.1
    assert frame.loc[4, "smooth_band"] == (0, 3)
    assert {"device_name", "started", "wall_seconds", "epochs_run", "best_epoch"} <= set(frame)

    agg = aggregate_seeds(frame, by=["num_blocks", "smooth_band"], metrics=["HR@10", "NDCG@10"])
    two = agg[(agg["num_blocks"] == 2)].iloc[0]
    values = np.array([0.2, 0.4, 0.9])
    assert two["HR@10 mean"] == pytest.approx(values.mean())
    assert two["HR@10 std"] == pytest.approx(values.std(ddof=1))
    assert two["HR@10 count"] == 3 and two["NDCG@10 mean"] == pytest.approx(values.mean() / 2)
    one = agg[(agg["num_blocks"] == 1)].iloc[0]
    assert one["HR@10 count"] == 1 and pd.isna(one["HR@10 std"])
    assert len(agg) == 3  # the smooth_band run is its own group (None kept, not dropped)


def test_commit_of_a_tree_without_git_comes_from_the_environment(tmp_path, monkeypatch) -> None:
    """A copy of the tree sent to another machine has no .git: SEQNB_GIT_COMMIT names its
    commit there. In a git checkout the variable is ignored (git itself is asked)."""
    monkeypatch.setenv("SEQNB_GIT_COMMIT", "c" * 40)
    monkeypatch.setattr(results_mod, "REPO_ROOT", tmp_path)
    assert results_mod._git_commit() == "c" * 40
    (tmp_path / ".git").mkdir()
    assert results_mod._git_commit() != "c" * 40
    monkeypatch.delenv("SEQNB_GIT_COMMIT")
    (tmp_path / ".git").rmdir()
    assert results_mod._git_commit() == "unknown"


def test_book_shows_paths_as_a_readers_checkout_has_them(tmp_path: Path) -> None:
    """Inside the repository or beside it: relative to it; anywhere else: absolute."""
    from seqnb.paths import REPO_ROOT, shown_path

    assert shown_path(REPO_ROOT / "results") == "results"
    assert shown_path(REPO_ROOT.parent / "shared" / "data") == "../shared/data"
    outside = REPO_ROOT.parent.parent / "elsewhere"
    assert shown_path(outside) == str(outside.resolve())
    assert shown_path(tmp_path) == str(tmp_path.resolve())
