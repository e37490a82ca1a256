"""The result store: one JSON (+ one compressed .npz of per-user/per-item arrays) per run.

    results/runs/<run-id>.json     config, valid_curve, best_epoch, test, test_shuffled_*,
                                   extras, provenance — readable without seqnb
    results/runs/<run-id>.npz      test/valid ranks per user, item norms and frequencies
    results/checkpoints/<id>.pt    best model state (not committed; lets extras be added)

The run id is a hash of the configuration without its labels (``chapter``, ``device``), so a
run needed by two chapters is trained once. Writes are atomic (temp file + rename).

A configuration names its data set: a registered name (``python -m seqnb datasets``), or
``csv:PATH`` for your own ``user,item,timestamp`` file (see :func:`load_run_dataset`), so
that every stored run can be reproduced from the command line.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import platform
import shlex
import subprocess
import time
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from seqnb import __version__
from seqnb.config import RunConfig
from seqnb.data.dataset import Dataset
from seqnb.paths import REPO_ROOT, results_root

RUNS = "runs"
CHECKPOINTS = "checkpoints"
CSV_PREFIX = "csv:"


class CorruptResultError(ValueError):
    """A stored result file that cannot be read."""


class MissingResultError(LookupError):
    """A result that is not stored, with the command that would produce it."""


def command_for(config: RunConfig, root: str | os.PathLike[str] | None = None) -> str:
    """The command line that trains ``config`` and stores it under ``root``.

    ``--results ROOT`` is added when ``root`` is not the default store, so the command
    stores the run where the caller looks for it. Values are shell-quoted.
    """
    base = RunConfig(dataset=config.dataset)
    parts = ["python -m seqnb run"]
    for key, value in config.to_dict().items():
        if key == "dataset" or (key != "chapter" and getattr(base, key) == value):
            continue
        if key == "chapter" and not value:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        parts.append(f"--{key.replace('_', '-')} {shlex.quote(str(value))}")
    parts.append(f"--dataset {shlex.quote(config.dataset)}")
    if root is not None and results_root(root).resolve() != results_root(None).resolve():
        parts.append(f"--results {shlex.quote(str(results_root(root).resolve()))}")
    return " ".join(parts)


def csv_path(name: str) -> Path | None:
    """The file of a ``csv:PATH`` data set name (None for any other name)."""
    if not name.startswith(CSV_PREFIX):
        return None
    return Path(name[len(CSV_PREFIX) :]).expanduser().resolve()


def load_run_dataset(name: str) -> Dataset:
    """The data set a configuration names: a registered one, or ``csv:PATH``.

    ``csv:PATH`` reads a generic ``user,item,timestamp`` CSV (header optional; see
    :func:`seqnb.data.loaders.read_interactions_csv`), keeps users with at least three
    interactions (the leave-one-out split needs them) and applies no item filter; filter
    your file beforehand, or register a :class:`~seqnb.data.DatasetSpec` with a k-core
    recipe. The name, path included, is part of the run id: use an absolute path for ids
    that do not depend on the working directory.
    """
    from seqnb.data import DatasetSpec, RawSource, load_dataset, register_dataset
    from seqnb.data import clear_cache as _clear_cache
    from seqnb.data import registry as _registry

    path = csv_path(name)
    if path is None:
        return load_dataset(name)
    if not path.is_file():
        raise FileNotFoundError(f"data set {name!r}: no such file {path}")
    spec = DatasetSpec(
        name=name,
        description=f"user,item,timestamp CSV {path}",
        sources=(RawSource("interactions_csv", str(path)),),
        user_core=3,
        item_core=0,
        obtain=f"the file {path} given on the command line",
    )
    # Registered only while it loads, so that the process-wide registry (what
    # `python -m seqnb datasets` lists) is left as it was.
    previous = _registry._REGISTRY.get(name)
    register_dataset(spec, replace=True)
    try:
        return load_dataset(name)
    finally:
        _clear_cache(name)
        if previous is None:
            _registry._REGISTRY.pop(name, None)
        else:
            _registry._REGISTRY[name] = previous


def _git_commit() -> str:
    """HEAD (+dirty when ``seqnb/`` has uncommitted changes); where the tree has no git
    repository (a copy sent to another machine), ``$SEQNB_GIT_COMMIT`` names it instead."""
    given = os.environ.get("SEQNB_GIT_COMMIT")
    if given and not (REPO_ROOT / ".git").exists():
        return given
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "seqnb"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        commit = out.stdout.strip() or "unknown"
        return commit + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` so that it holds either its old or its new content, never a part.

    The bytes go to a hidden temp file in the same folder (never matched as a result),
    which is renamed over ``path``; on any failure the temp file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ResultStore:
    """Stored results under one root directory."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = results_root(root)

    def json_path(self, run_id: str) -> Path:
        return self.root / RUNS / f"{run_id}.json"

    def arrays_path(self, run_id: str) -> Path:
        return self.root / RUNS / f"{run_id}.npz"

    def checkpoint_dir(self) -> Path:
        return self.root / CHECKPOINTS

    def has(self, config: RunConfig) -> bool:
        return self.json_path(config.run_id).exists()

    def save(self, result: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Path:
        run_id = result["run_id"]
        if arrays:
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            _atomic_write_bytes(self.arrays_path(run_id), buf.getvalue())
        blob = json.dumps(result, indent=1, sort_keys=False).encode()
        _atomic_write_bytes(self.json_path(run_id), blob)  # the JSON last: it marks completion
        return self.json_path(run_id)

    def load(self, run_id: str) -> dict[str, Any]:
        path = self.json_path(run_id)
        try:
            with open(path, encoding="utf-8") as f:
                result = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorruptResultError(
                f"stored result {path} is corrupt ({err}); delete it and rerun the run"
            ) from err
        if not isinstance(result, dict):
            raise CorruptResultError(f"stored result {path} is not a JSON object")
        for key in ("config", "test", "provenance"):
            if key not in result:
                raise CorruptResultError(f"stored result {path} lacks the key {key!r}")
        return result

    def arrays(self, run_id: str) -> dict[str, np.ndarray]:
        path = self.arrays_path(run_id)
        if not path.exists():
            return {}
        try:
            with np.load(path) as npz:
                return {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise CorruptResultError(f"stored arrays {path} are corrupt ({err})") from err

    def all(self) -> list[dict[str, Any]]:
        """Every stored result (corrupt files raise with their path)."""
        return [self.load(p.stem) for p in sorted((self.root / RUNS).glob("*.json"))]


def run(
    config: RunConfig,
    dataset: Dataset | None = None,
    store: ResultStore | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate one configuration; store it (when ``store`` is given) and return it."""
    from seqnb.train import train

    if dataset is None:
        dataset = load_run_dataset(config.dataset)
    if config.max_users is not None and dataset.num_users > config.max_users:
        dataset = dataset.subsample_users(config.max_users, seed=0)
    started = _dt.datetime.now(_dt.timezone.utc)
    commit = _git_commit()  # the code this process runs, not what HEAD is when it ends
    tick = time.perf_counter()
    host = platform.node()
    outcome = train(
        config,
        dataset,
        progress=progress,
        checkpoint_dir=store.checkpoint_dir() if store else None,
        provenance={"started": started.isoformat(timespec="seconds"), "host": host,
                    "git_commit": commit},
    )
    wall = time.perf_counter() - tick
    result: dict[str, Any] = {
        "run_id": config.run_id,
        "config": config.to_dict(),
        "valid_curve": outcome.valid_curve,
        "best_epoch": outcome.best_epoch,
        "test": outcome.test,
        **outcome.extra_tests,
        "extras": outcome.extras,
        "dataset_stats": dataset.statistics(),
        "provenance": {
            "seqnb_version": __version__,
            "git_commit": commit,
            "device": outcome.device,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "host": host,
            "started": started.isoformat(timespec="seconds"),
            "wall_seconds": round(wall, 2),
            "train_seconds": round(outcome.train_seconds, 2),
            "epochs_run": outcome.epochs_run,
        },
    }
    if len(outcome.segments) > 1:  # resumed: every process that trained it, all their time
        prov = result["provenance"]
        segments = [*outcome.segments[:-1], {**outcome.segments[-1], "wall_seconds": prov["wall_seconds"]}]
        prov["segments"] = segments
        prov["started"] = segments[0].get("started", prov["started"])
        prov["wall_seconds"] = round(sum(seg.get("wall_seconds") or 0.0 for seg in segments), 2)
    if store is not None:
        store.save(result, outcome.arrays)
        if outcome.best_state is not None:
            buf = io.BytesIO()
            torch.save(outcome.best_state, buf)
            _atomic_write_bytes(store.checkpoint_dir() / f"{config.run_id}.pt", buf.getvalue())
            resume = store.checkpoint_dir() / f"{config.run_id}.resume.pt"
            resume.unlink(missing_ok=True)
    result["arrays"] = outcome.arrays
    return result


def get_or_run(
    config: RunConfig,
    train: bool = True,
    dataset: Dataset | None = None,
    root: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The stored result for ``config``; trained and stored first if absent and ``train``."""
    store = ResultStore(root)
    if store.has(config):
        return store.load(config.run_id)
    if not train:
        raise MissingResultError(
            f"no stored result for run {config.run_id} under {store.root / RUNS}.\n"
            f"Produce it with:\n  {command_for(config, root)}\n"
            "or rerun the chapter with train=True (or profile='full')."
        )
    result = run(config, dataset=dataset, store=store, progress=progress)
    result.pop("arrays", None)
    return result


def results_frame(results: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: the configuration columns, test metrics, extra tests, provenance."""
    rows = []
    for r in results:
        row: dict[str, Any] = {"run_id": r.get("run_id"), **r["config"]}
        if row.get("smooth_band") is not None:
            row["smooth_band"] = tuple(row["smooth_band"])
        row.update(r["test"])
        for key, value in r.items():
            if key.startswith("test_") and isinstance(value, dict):
                row.update({f"{key}:{m}": v for m, v in value.items()})
        row["best_epoch"] = r.get("best_epoch")
        prov = r.get("provenance", {})
        segments = prov.get("segments") or [prov]  # a resumed run names every process
        row.update(
            device_name=" + ".join(_distinct(segments, "device")) or None,
            started=prov.get("started"),
            wall_seconds=prov.get("wall_seconds"),
            epochs_run=prov.get("epochs_run"),
            git_commit=prov.get("git_commit"),
            code_commits=_distinct(segments, "git_commit"),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _distinct(segments: list[dict[str, Any]], key: str) -> tuple[str, ...]:
    """The distinct non-empty values of ``key`` over a run's segments, in order."""
    return tuple(dict.fromkeys(seg[key] for seg in segments if seg.get(key)))


def aggregate_seeds(
    frame: pd.DataFrame, by: list[str], metrics: Iterable[str]
) -> pd.DataFrame:
    """Mean, std and count over seeds of ``metrics``, grouped by ``by``."""
    metrics = list(metrics)
    grouped = frame.groupby(by, dropna=False, sort=False)[metrics]
    out = grouped.agg(["mean", "std", "count"])
    out.columns = [f"{m} {stat}" for m, stat in out.columns]
    return out.reset_index()
