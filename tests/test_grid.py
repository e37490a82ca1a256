"""The local grid in several worker processes: ``run_grid(..., workers=2)``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import seqnb.grid as grid_mod
from seqnb.cli import main
from seqnb.config import RunConfig
from seqnb.grid import run_grid
from seqnb.results import ResultStore

TINY = dict(
    maxlen=5, num_blocks=1, embedding_dim=8, epochs=1, batch_size=16, eval_every=1, device="cpu"
)


def tiny_csv(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.csv"
    rng = np.random.default_rng(0)
    lines = ["user,item,timestamp"]
    for u in range(30):
        lines += [f"u{u},i{i},{1000 + t}" for t, i in enumerate(rng.integers(1, 21, size=8))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_grid_in_two_worker_processes(tmp_path: Path, monkeypatch) -> None:
    """Runs happen in the workers (never in the parent) and are stored exactly as a
    one-process run stores them; a failing run is reported; a second call skips."""
    path = tiny_csv(tmp_path)
    good = [RunConfig(dataset=f"csv:{path}", seed=s, **TINY) for s in (0, 1)]
    missing = RunConfig(dataset=f"csv:{tmp_path}/absent.csv", **TINY)
    store = ResultStore(tmp_path / "store")
    reference = ResultStore(tmp_path / "reference")
    run_grid(good[:1], root=reference.root)  # one process, in this process

    monkeypatch.setattr(grid_mod, "run", lambda *a, **k: pytest.fail("trained in the parent"))
    summary = run_grid([*good, missing], root=store.root, workers=2)
    assert (summary["trained"], summary["skipped"], summary["failed"]) == (2, 0, 1)
    assert "absent.csv" in summary["errors"][missing.run_id]
    for config in good:
        assert store.load(config.run_id)["config"]["seed"] == config.seed
    # same seed, same metrics, whichever process trained it
    assert store.load(good[0].run_id)["test"] == reference.load(good[0].run_id)["test"]

    again = run_grid(good, root=store.root, workers=2)
    assert (again["trained"], again["skipped"], again["failed"]) == (0, 2, 0)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_count_is_rejected(workers) -> None:
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        run_grid([], workers=workers)


def test_cli_rejects_zero_workers_before_any_work(capsys) -> None:
    with pytest.raises(SystemExit, match="--workers must be a positive integer"):
        main(["grid", "--chapter", "maxlen", "--workers", "0"])


def test_band_grid_is_every_band_that_can_select_an_item() -> None:
    from seqnb.experiments import OPEN_END, band_grid, chapter_configs

    # by hand: edges 0, 2, 5 give the six bands with l <= u
    assert band_grid((0, 2, 5)) == [(0, 0), (0, 2), (0, 5), (2, 2), (2, 5), (5, 5)]
    # an open end is an upper edge only: [OPEN_END, OPEN_END] would select no item
    assert band_grid((0, 3, OPEN_END)) == [(0, 0), (0, 3), (0, OPEN_END), (3, 3), (3, OPEN_END)]
    # Chapter 6: per model, the unmodified run plus each band with and without self term,
    # except [0, 0], where the two are one model (one run)
    configs = chapter_configs("embedding_frequency", "full", datasets=["Amazon2014Beauty_550_LOU"],
                              seeds=[0], grid=[0, 3, OPEN_END])
    assert len(configs) == 2 * (1 + 2 * 5 - 1)
    assert len({c.run_id for c in configs}) == len(configs)
    assert sum(c.smooth_band == (0, 0) for c in configs) == 2
    assert {c.smooth_band for c in configs} == {None, *band_grid((0, 3, OPEN_END))}


PARENT = """
import multiprocessing, os, time
from concurrent.futures import ProcessPoolExecutor
from seqnb.grid import _init_worker

if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(1, mp_context=context, initializer=_init_worker, initargs=(1,))
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 300)  # a run in progress
    time.sleep(300)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited and waits to be reaped


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux /proc")
def test_workers_stop_when_the_grid_process_is_killed(tmp_path) -> None:
    """`kill -9` on the grid leaves no worker training on (the next grid would run the same
    run beside it): the worker notices it was orphaned and exits within seconds."""
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "grid_parent.py"
    script.write_text(PARENT)
    root = str(Path(grid_mod.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    # stderr: the killed parent's resource tracker reports its pool's semaphores
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        worker = int(parent.stdout.readline())
        assert _running(worker)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    orphaned = _running(worker)
    if orphaned:
        os.kill(worker, 9)
    assert not orphaned


def test_device_script_trains_for_a_while_and_packs_the_finished_runs(tmp_path) -> None:
    """scripts/device_grid.sh: a tiny grid, every finished run (JSON + arrays) in
    $OUT/results.tar.gz; run again, it trains and packs nothing (the store skips them)."""
    import os
    import subprocess
    import sys
    import tarfile

    root = Path(grid_mod.__file__).resolve().parents[1]
    csv = tiny_csv(tmp_path)
    argv = ["bash", str(root / "scripts" / "device_grid.sh"), "5", "--chapter", "stamp",
            "--profile", "smoke", "--datasets", f"csv:{csv}", "--seeds", "0", "--epochs", "1",
            "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(root),
           "SEQNB_RESULTS": str(tmp_path / "results"), "OUT": str(tmp_path / "out")}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    stored = sorted(p.name for p in (tmp_path / "results" / "runs").iterdir())
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as tar:
        assert sorted(tar.getnames()) == stored and len(stored) == 6  # 3 runs
    assert "6 files of 3 finished runs" in done.stdout

    (tmp_path / "out" / "results.tar.gz").unlink()
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "0 files of 0 finished runs" in again.stdout
    assert not (tmp_path / "out" / "results.tar.gz").exists()


def test_device_script_refuses_a_bad_time() -> None:
    import subprocess

    root = Path(grid_mod.__file__).resolve().parents[1]
    done = subprocess.run(["bash", str(root / "scripts" / "device_grid.sh"), "soon", "--x"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "usage: bash scripts/device_grid.sh MINUTES" in done.stderr
