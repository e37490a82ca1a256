"""What a chapter notebook calls: check its parameters, then fetch (or train) its runs.

    runs = chapter_runs("zero_block", profile="book", datasets=None, seeds=[0, 1, 2])
    runs.frame      one row per stored run (config, test metrics, extra tests, provenance)
    runs.missing    configurations the profile needs but the store lacks (book profile)
    runs.provenance a one-line summary: devices, dates, epochs, seeds, seqnb commits

``smoke`` trains a reduced grid on 300 real users into a temporary store; ``full`` trains
whatever is missing into ``results/``; ``book`` only loads, and lists what is missing with
the command that produces it — it never trains.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqnb.config import RunConfig
from seqnb.experiments import (
    CHAPTERS,
    HELD,
    NOT_HELD,
    PROFILES,
    chapter_configs,
    profile_settings,
)
from seqnb.results import ResultStore, command_for, get_or_run, results_frame

_SMOKE_STORE: Path | None = None


def smoke_store() -> Path:
    """One temporary result store per process for smoke runs (never ``results/``)."""
    global _SMOKE_STORE
    if _SMOKE_STORE is None:
        _SMOKE_STORE = Path(tempfile.mkdtemp(prefix="seqnb-smoke-"))
    return _SMOKE_STORE


def check_parameters(
    chapter: str,
    profile: str,
    datasets: list[str] | tuple[str, ...] | str | None = None,
    seeds: list[int] | tuple[int, ...] = (0,),
) -> list[str] | None:
    """Fail fast, before any work, on a bad chapter parameter; return the data set list."""
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; chapters: {list(CHAPTERS)}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    if isinstance(datasets, str):
        datasets = [datasets]
    if datasets is not None:
        from seqnb.data import list_datasets

        known = {spec.name for spec in list_datasets()}
        unknown = [d for d in datasets if d not in known]
        if unknown:
            raise ValueError(f"unknown data set(s) {unknown}; known data sets: {sorted(known)}")
    if not seeds or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    return list(datasets) if datasets is not None else None


@dataclass
class ChapterRuns:
    chapter: str
    profile: str
    configs: list[RunConfig]
    results: list[dict[str, Any]]
    missing: list[RunConfig]
    store: ResultStore
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)

    def arrays(self, run_id: str) -> dict[str, np.ndarray]:
        return self.store.arrays(run_id)

    @property
    def provenance(self) -> str:
        """Devices, dates, epochs, seeds and seqnb commits of the runs shown."""
        if self.frame.empty:
            return "no stored runs"
        f = self.frame
        days = sorted({s[:10] for s in f["started"]})
        date = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
        devices = "; ".join(sorted(set(f["device_name"])))
        epochs = ", ".join(str(e) for e in sorted(set(f["epochs_run"])))
        seeds = sorted(set(f["seed"]))
        code = code_summary(f)
        return (
            f"{len(f)} runs · device: {devices} · trained {date} · epochs: {epochs} · "
            f"seeds: {', '.join(map(str, seeds))} ({len(seeds)})"
            + (f" · code: {code}" if code else "")
            + ("" if self.profile != "smoke" else " · SMOKE profile: 300 users, 2 epochs")
        )

    def missing_table(self) -> pd.DataFrame:
        """The runs this chapter would show but the store lacks, with their commands."""
        return pd.DataFrame(
            [
                {"dataset": c.dataset, "model": c.model, "seed": c.seed, "command": command_for(c)}
                for c in self.missing
            ]
        )


MAX_COMMITS_LISTED = 4


def code_summary(frame: pd.DataFrame) -> str:
    """The seqnb commits that trained the runs in ``frame``, for a provenance line.

    Up to ``MAX_COMMITS_LISTED`` are listed (sorted); more are summed up as their count and
    the first and last in the order the runs started, with a pointer to the per-run list.
    """
    if "code_commits" not in frame or frame.empty:
        return ""
    by_start = frame.sort_values("started", kind="stable") if "started" in frame else frame
    commits = list(dict.fromkeys(short_commit(c) for cs in by_start["code_commits"]
                                 for c in cs))
    if len(commits) <= MAX_COMMITS_LISTED:
        return ", ".join(sorted(commits))
    dirty = sum(c.endswith("+dirty") for c in commits)
    return (f"{len(commits)} commits, from {commits[0]} to {commits[-1]}"
            + (f" ({dirty} with uncommitted changes)" if dirty else "")
            + "; each run's: python -m seqnb results")


def run_commits(commits: Sequence[str]) -> str:
    """Every commit that trained one run, short: 'aaaaaaa + bbbbbbb' (a resumed run)."""
    return " + ".join(short_commit(c) for c in commits)


def short_commit(commit: str) -> str:
    """'3b26559eb07b…' -> '3b26559', keeping a '+dirty' mark; 'unknown' stays."""
    if commit == "unknown":
        return commit
    return commit[:7] + ("+dirty" if commit.endswith("+dirty") else "")


def chapter_runs(
    chapter: str,
    profile: str = "book",
    datasets: list[str] | tuple[str, ...] | str | None = None,
    seeds: list[int] | tuple[int, ...] = (0, 1, 2),
    grid: list[Any] | tuple[Any, ...] | None = None,
    train: bool | None = None,
    results_root: str | Path | None = None,
    progress: bool = True,
    **overrides: Any,
) -> ChapterRuns:
    """The chapter's runs under ``profile``: loaded, trained (smoke/full), or listed missing."""
    datasets = check_parameters(chapter, profile, datasets, seeds)
    settings = profile_settings(profile)
    if profile == "smoke":  # smoke models are tiny: one thread beats two on a shared CPU
        import torch

        torch.set_num_threads(1)
    if train is None:
        train = settings.train
    if datasets is not None:
        datasets = [d for d in datasets if d not in NOT_HELD] or None
    root = smoke_store() if settings.isolated_store and results_root is None else results_root
    store = ResultStore(root)
    configs = chapter_configs(chapter, profile, datasets=datasets, seeds=seeds, grid=grid,
                              **overrides)
    results, missing = [], []
    for config in configs:
        if store.has(config) or train:
            results.append(get_or_run(config, train=train, root=store.root, progress=progress))
        else:
            missing.append(config)
    runs = ChapterRuns(chapter, profile, configs, results, missing, store)
    runs.frame = results_frame(results)
    return runs


def unavailable_datasets() -> list[str]:
    """SPEC's data sets we do not hold: shown in tables as 'not available offline'."""
    return list(NOT_HELD)


__all__ = ["HELD", "NOT_HELD", "ChapterRuns", "chapter_runs", "check_parameters", "code_summary",
           "run_commits", "short_commit", "unavailable_datasets"]
