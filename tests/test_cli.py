"""``python -m seqnb`` end to end on a tiny generated ``user,item,timestamp`` file (seconds)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import seqnb.train as train_mod
from seqnb.cli import main
from seqnb.config import MODELS, RunConfig
from seqnb.data import list_datasets
from seqnb.experiments import CHAPTERS, chapter_configs
from seqnb.paths import REPO_ROOT
from seqnb.results import MissingResultError, ResultStore, get_or_run

TINY_FLAGS = ["--maxlen", "5", "--num-blocks", "1", "--embedding-dim", "8", "--epochs", "1",
              "--batch-size", "16", "--eval-every", "1", "--device", "cpu"]  # fmt: skip
TINY = dict(
    maxlen=5, num_blocks=1, embedding_dim=8, epochs=1, batch_size=16, eval_every=1, device="cpu"
)


@pytest.fixture(scope="module")
def csv_name(tmp_path_factory) -> str:
    """``csv:PATH`` of 30 users x 8 interactions over 20 items."""
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    rng = np.random.default_rng(0)
    lines = ["user,item,timestamp"]
    for u in range(30):
        lines += [f"u{u},i{i},{1000 + t}" for t, i in enumerate(rng.integers(1, 21, size=8))]
    path.write_text("\n".join(lines) + "\n")
    return f"csv:{path}"


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to train fails the test."""
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("must not train"))


def stored_ids(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "runs").glob("*.json")) if root.exists() else []


# ----- run -------------------------------------------------------------------------------------
def test_run_from_flags_then_yaml_is_the_same_run(
    csv_name: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    """`run` with flags trains and stores one result; the same config from a YAML file (with
    PyYAML's string '1e-3' for lr) is recognised as already stored."""
    root = tmp_path / "store"
    code = main(["run", "--dataset", csv_name, *TINY_FLAGS, "--lr", "0.001",
                 "--results", str(root)])  # fmt: skip
    assert code == 0
    expected = RunConfig(dataset=csv_name, lr=0.001, **TINY)
    assert stored_ids(root) == [expected.run_id]
    out = capsys.readouterr().out
    assert f"stored {ResultStore(root).json_path(expected.run_id)}" in out
    assert re.search(r"HR@10=\d\.\d{4}", out)

    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(
        f"dataset: '{csv_name}'\nmaxlen: 5\nnum_blocks: 1\nembedding_dim: 8\nepochs: 1\n"
        "batch_size: 16\neval_every: 1\nlr: 1e-3\nchapter: stamp\n"
    )
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("must not retrain"))
    assert main(["run", "--config", str(yaml_file), "--results", str(root)]) == 0
    assert "already stored" in capsys.readouterr().out
    assert stored_ids(root) == [expected.run_id]


def test_forced_rerun_that_dies_keeps_the_old_result(
    csv_name: str, tmp_path: Path, monkeypatch
) -> None:
    """`run --force` overwrites atomically: a rerun that fails leaves the stored result."""
    config = RunConfig(dataset=csv_name, **TINY)
    store = ResultStore(tmp_path)
    store.save({"run_id": config.run_id, "config": config.to_dict(), "test": {"HR@10": 0.5},
                "provenance": {}})  # fmt: skip

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        main(["run", "--dataset", csv_name, *TINY_FLAGS, "--results", str(tmp_path), "--force"])
    assert store.load(config.run_id)["test"] == {"HR@10": 0.5}


def test_missing_result_command_produces_that_run(csv_name: str, tmp_path: Path) -> None:
    """The command printed by get_or_run(train=False) runs as is (through a shell, as
    `python -m seqnb`) and stores exactly the run that was asked for."""
    config = RunConfig(dataset=csv_name, chapter="zero_block", model="zero_block", seed=3,
                       lr=2e-3, smooth_band=None, **TINY)  # fmt: skip
    with pytest.raises(MissingResultError) as info:
        get_or_run(config, train=False, root=tmp_path)
    command = next(line.strip() for line in str(info.value).splitlines()
                   if line.strip().startswith("python -m seqnb run"))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        f"{sys.executable} {command.removeprefix('python ')}",
        shell=True, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stored_ids(tmp_path) == [config.run_id]
    stored = get_or_run(config, train=False, root=tmp_path)
    assert stored["run_id"] == config.run_id
    assert RunConfig.from_dict(stored["config"]) == config


# ----- grid and results ------------------------------------------------------------------------
def test_grid_dry_run_lists_the_chapter_grid(
    csv_name: str, tmp_path: Path, capsys, no_training
) -> None:
    """`grid --dry-run` prints the chapter's runs (as chapter_configs builds them) and
    trains nothing."""
    argv = ["grid", "--chapter", "maxlen", "--profile", "smoke", "--datasets", csv_name,
            "--seeds", "0", "1", "--results", str(tmp_path), "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    listing, coverage = capsys.readouterr().out.split("\n\n")
    *lines, total = listing.splitlines()
    printed = [line.split()[0] for line in lines]
    expected = chapter_configs("maxlen", "smoke", datasets=[csv_name], seeds=[0, 1])
    assert printed == [c.run_id for c in expected] and len(printed) == 6
    assert all("to train" in line and "SASRec (2 blocks), maxlen" in line for line in lines)
    assert total == "6 runs: 0 stored, 6 to train"
    header, row = coverage.splitlines()[1:]
    assert header.split()[:1] == ["chapter"] and header.split()[-1] == "all"
    assert row.split()[:2] == ["1.", "maxlen"] and row.endswith("0 / 6")
    assert stored_ids(tmp_path) == []


def test_grid_trains_once_then_skips_and_results_lists(
    csv_name: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    """A real tiny grid (zero_block + shuffle share one run), a second call that skips
    everything, and `results` filtered by chapter and data set."""
    argv = ["grid", "--chapters", "zero_block", "shuffle", "--profile", "smoke",
            "--datasets", csv_name, "--seeds", "0", "--epochs", "1",
            "--results", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    ids = {c.run_id for ch in ("zero_block", "shuffle")
           for c in chapter_configs(ch, "smoke", datasets=[csv_name], seeds=[0], epochs=1)}  # fmt: skip
    assert len(ids) == 3  # shuffle's 2-block SASRec is zero_block's
    assert set(stored_ids(tmp_path)) == ids
    assert "3 trained, 0 already stored, 0 failed" in capsys.readouterr().out

    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("must not retrain"))
    assert main(argv) == 0
    assert "0 trained, 3 already stored, 0 failed" in capsys.readouterr().out
    assert main([*argv, "--dry-run"]) == 0
    listing, coverage = capsys.readouterr().out.split("\n\n")
    assert listing.splitlines()[-1] == "3 runs: 3 stored, 0 to train"
    rows = {line.split()[1]: line.split()[-3:] for line in coverage.splitlines()[2:]}
    assert rows == {"zero": ["3", "/", "3"], "shuffle": ["1", "/", "1"]}  # shared: in both

    assert main(["results", "--results", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert all(run_id in table for run_id in ids) and "NDCG@10" in table
    assert "SASRec (2 blocks)" in table and "ZeroBlock" in table  # each run's setting
    assert main(["results", "--chapter", "shuffle", "--dataset", csv_name,
                 "--results", str(tmp_path)]) == 0  # fmt: skip
    (shared,) = chapter_configs("shuffle", "smoke", datasets=[csv_name], seeds=[0], epochs=1)
    shown = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert shown == [shared.run_id]  # stored under the zero_block label, still shuffle's run
    assert main(["results", "--dataset", "LastFM", "--results", str(tmp_path)]) == 0
    assert "no stored results match" in capsys.readouterr().out
    assert main(["results", "--results", str(tmp_path / "empty")]) == 0
    assert "no stored results" in capsys.readouterr().out


def test_datasets_lists_the_registry(tmp_path: Path, capsys, monkeypatch) -> None:
    """`datasets` prints every registered name (here with an empty data root: nothing
    loads, every set is reported with the path where it was looked for)."""
    monkeypatch.setenv("SEQNB_CACHE", str(tmp_path / "cache"))
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for spec in list_datasets():
        assert re.search(rf"^{spec.name} .*not available offline", out, re.MULTILINE)


# ----- rejected before any work ----------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "--dataset", "LastFM", "--model", "foo"], [f"'{m}'" for m in MODELS]),
        (["run", "--dataset", "LastFM", "--maxlen", "0"], ["maxlen=0", "positive integer"]),
        (["run", "--dataset", "LastFM", "--maxlen", "ten"], ["--maxlen 'ten'"]),
        (["run", "--dataset", "LastFM", "--loss", "mse"], ["'ce'", "'bce'", "'bpr'"]),
        (["run", "--dataset", "LastFM", "--num-heads", "3"], ["divisor of embedding_dim=64"]),
        (["run", "--dataset", "LastFM", "--device", "tpu9"], ["--device 'tpu9'"]),
        (
            ["run", "--dataset", "Beauty"],
            ["unknown data set", "Amazon2014Beauty_550_LOU", "MovieLens1M_550_LOU", "csv:PATH"],
        ),
        (["run", "--dataset", "csv:/no/such/file.csv"], ["no such file /no/such/file.csv"]),
        (["run", "--epochs", "3"], ["--dataset is required"]),
        (["grid", "--chapter", "intro", "--dry-run"], ["unknown chapter", *CHAPTERS]),
        (["grid", "--chapter", "maxlen", "--datasets", "Nope", "--dry-run"], ["LastFM"]),
        (["grid", "--chapter", "maxlen", "--epochs", "0", "--dry-run"], ["epochs=0"]),
        (["results", "--chapter", "intro"], ["unknown chapter", *CHAPTERS]),
    ],
)
def test_bad_values_are_rejected_with_the_allowed_ones(
    argv: list[str], expected: list[str], tmp_path: Path, no_training
) -> None:
    """A bad value stops the command before any work, naming the allowed values."""
    with pytest.raises(SystemExit) as info:
        main([*argv, "--results", str(tmp_path)])
    message = str(info.value.code)
    for text in expected:
        assert text in message, (text, message)
    assert stored_ids(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--dataset", "LastFM", "--learning-rate", "0.1"],
        ["run", "--dataset", "LastFM", "--epoch", "3"],  # no abbreviations of flags
        ["grid", "--profile", "huge"],
        ["grid", "--backend", "spark"],
        ["explode"],
    ],
)
def test_unknown_flags_and_choices_are_rejected(argv: list[str], capsys, no_training) -> None:
    """argparse refuses unknown flags, profiles, backends and commands, showing the usage."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and ("unrecognized arguments" in err or "invalid choice" in err)


def test_flag_values_are_typed() -> None:
    """Flags become the field types; 'none' clears the optional ones; bad booleans fail."""
    from seqnb.cli import _config_from_args, build_parser

    def parse(*flags: str) -> RunConfig:
        return _config_from_args(build_parser().parse_args(["run", "--dataset", "LastFM",
                                                            *flags]), {})  # fmt: skip

    c = parse("--smooth-band", "[1,3]", "--remove-seen", "no", "--max-users", "50",
              "--smooth-self-loops", "false", "--dropout", "0")  # fmt: skip
    assert (c.smooth_band, c.remove_seen, c.max_users, c.smooth_self_loops, c.dropout) == (
        (1, 3), False, 50, False, 0.0)  # fmt: skip
    c = parse("--smooth-band", "none", "--remove-seen", "None", "--max-users", "none")
    assert (c.smooth_band, c.remove_seen, c.max_users) == (None, None, None)
    with pytest.raises(SystemExit, match="--remove-seen 'maybe'"):
        parse("--remove-seen", "maybe")
    with pytest.raises(SystemExit, match="--smooth-band '1-3'"):
        parse("--smooth-band", "1-3")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_is_refused_without_a_gpu(tmp_path: Path, no_training) -> None:
    """`--device cuda` on a machine without CUDA stops before any work."""
    with pytest.raises(SystemExit, match="CUDA is not available"):
        main(["run", "--dataset", "LastFM", "--device", "cuda", "--results", str(tmp_path)])
    with pytest.raises(SystemExit, match="CUDA is not available"):
        main(["grid", "--chapter", "shuffle", "--device", "cuda:0", "--dry-run"])


def test_yaml_with_unknown_key_lists_the_keys(tmp_path: Path, no_training) -> None:
    """A YAML configuration with a misspelt key is refused with the allowed keys."""
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: LastFM\nlearning_rate: 0.1\n")
    with pytest.raises(SystemExit) as info:
        main(["run", "--config", str(path), "--results", str(tmp_path)])
    assert "learning_rate" in str(info.value.code) and "'lr'" in str(info.value.code)
    path.write_text("[1, 2]\n")
    with pytest.raises(SystemExit, match="mapping"):
        main(["run", "--config", str(path), "--results", str(tmp_path)])


def test_results_reads_plain_json(tmp_path: Path, capsys) -> None:
    """`results` lists a result written by hand (no seqnb needed to write one)."""
    config = RunConfig(dataset="LastFM", chapter="stamp", model="stamp")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / f"{config.run_id}.json").write_text(json.dumps({
        "run_id": config.run_id, "config": config.to_dict(), "valid_curve": [],
        "best_epoch": 5, "test": {"HR@10": 0.1234, "NDCG@10": 0.05},
        "provenance": {"device": "NVIDIA H100", "started": "2024-05-01T10:00:00+00:00",
                       "wall_seconds": 12.5, "epochs_run": 100, "git_commit": "b" * 40,
                       # begun at commit a, resumed and finished at b
                       "segments": [{"device": "cpu", "git_commit": "a" * 40},
                                    {"device": "NVIDIA H100", "git_commit": "b" * 40}]},
    }))  # fmt: skip
    assert main(["results", "--chapter", "stamp", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert config.run_id in out and "0.1234" in out and "NVIDIA H100" in out
    assert "aaaaaaa + bbbbbbb" in out  # every commit that trained it
