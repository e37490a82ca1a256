"""Run a list of configurations, skipping stored ones: locally (one after another, or in
``workers`` processes at once) or on Ray."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm.auto import tqdm

from seqnb.config import RunConfig, unique_runs
from seqnb.results import ResultStore, run


def _run_one(config: RunConfig, root: str | None) -> str:
    """Train and store one run (also the Ray task body); returns its id."""
    run(config, store=ResultStore(root), progress=False)
    return config.run_id


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    # A worker outlives a grid process that is killed (not interrupted): it would go on
    # training, side by side with the next grid's worker on the same run. Runs save atomic
    # checkpoints, so leaving at once is safe; the next grid resumes them.
    parent = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int, interval: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def run_grid(
    configs: Sequence[RunConfig],
    root: str | os.PathLike[str] | None = None,
    backend: str = "local",
    workers: int = 1,
) -> dict[str, Any]:
    """Train every configuration that is not stored yet.

    ``backend='local'`` runs them one after another with an overall progress bar, or, with
    ``workers > 1``, in that many processes at once (each with ``cpu_count // workers``
    threads): small models use two CPU cores, or one GPU, better side by side than alone;
    ``backend='ray'`` hands the same list to Ray (``ray.init()`` connects to a running
    cluster via ``RAY_ADDRESS``, or starts a local one). A failed run is reported and the
    grid goes on; the summary counts trained, skipped and failed runs. Configurations with
    the same run id (chapters that share a run) are trained once.
    """
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    store = ResultStore(root)
    todo = [c for c in unique_runs(configs) if not store.has(c)]
    summary: dict[str, Any] = {
        "trained": 0, "skipped": len(configs) - len(todo), "failed": 0, "errors": {}
    }
    if backend == "ray":
        # an absolute root: Ray workers need not share the driver's working directory
        return _run_ray(todo, str(store.root.resolve()), summary)
    if workers > 1 and len(todo) > 1:
        return _run_pool(todo, str(store.root.resolve()), summary, workers)
    bar = tqdm(todo, desc="grid", unit="run")
    for config in bar:
        bar.set_postfix_str(f"{config.chapter} {config.dataset} {config.model} seed={config.seed}")
        try:
            run(config, store=store, progress=True)
            summary["trained"] += 1
        except Exception as err:  # keep going: one failed run must not stop a night's grid
            summary["failed"] += 1
            summary["errors"][config.run_id] = f"{type(err).__name__}: {err}"
            tqdm.write(f"run {config.run_id} failed:\n{traceback.format_exc()}")
    return summary


def _run_pool(
    todo: list[RunConfig], root: str, summary: dict[str, Any], workers: int
) -> dict[str, Any]:
    """The local grid in ``workers`` fresh (spawned) processes."""
    workers = min(workers, len(todo))
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # never fork a process that holds torch
    bar = tqdm(total=len(todo), desc=f"grid ({workers} workers)", unit="run")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        pending = {pool.submit(_run_one, c, root): c for c in todo}
        for future in as_completed(pending):
            config = pending[future]
            try:
                future.result()
                summary["trained"] += 1
            except Exception as err:
                summary["failed"] += 1
                summary["errors"][config.run_id] = f"{type(err).__name__}: {err}"
                tqdm.write(f"run {config.run_id} failed: {type(err).__name__}: {err}")
            bar.update(1)
    bar.close()
    return summary


def _run_ray(todo: list[RunConfig], root: str, summary: dict[str, Any]) -> dict[str, Any]:
    try:
        import ray
    except ImportError as err:
        raise RuntimeError("backend='ray' needs Ray: pip install 'seqnb[ray]'") from err
    if not ray.is_initialized():
        ray.init()
    task = ray.remote(_run_one)
    pending = {task.remote(c, root): c for c in todo}
    bar = tqdm(total=len(pending), desc="grid (ray)", unit="run")
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        config = pending.pop(done[0])
        try:
            ray.get(done[0])
            summary["trained"] += 1
        except Exception as err:
            summary["failed"] += 1
            summary["errors"][config.run_id] = f"{type(err).__name__}: {err}"
        bar.update(1)
    bar.close()
    return summary
