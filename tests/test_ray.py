"""Scale-out: ``run_grid(..., backend='ray')`` on a local Ray instance started by the test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import seqnb.grid as grid_mod
from seqnb.config import RunConfig
from seqnb.grid import run_grid
from seqnb.results import ResultStore

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'seqnb[ray]')")

TINY = dict(
    maxlen=5, num_blocks=1, embedding_dim=8, epochs=1, batch_size=16, eval_every=1, device="cpu"
)


@pytest.fixture(scope="module")
def local_ray():
    """A private two-CPU Ray instance, shut down after the module."""
    if ray.is_initialized():  # pragma: no cover - only if another test left one running
        ray.shutdown()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from a test
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_grid_runs_on_ray(local_ray, tmp_path: Path, monkeypatch) -> None:
    """Two tiny runs go to Ray workers (which import seqnb themselves) and are stored; a
    failing run is reported without stopping the grid; a second call skips the stored runs."""
    path = tmp_path / "tiny.csv"
    rng = np.random.default_rng(0)
    lines = ["user,item,timestamp"]
    for u in range(30):
        lines += [f"u{u},i{i},{1000 + t}" for t, i in enumerate(rng.integers(1, 21, size=8))]
    path.write_text("\n".join(lines) + "\n")

    good = [RunConfig(dataset=f"csv:{path}", seed=s, **TINY) for s in (0, 1)]
    missing = RunConfig(dataset=f"csv:{tmp_path}/absent.csv", **TINY)
    store = ResultStore(tmp_path / "store")

    # the driver cannot train: every run must happen in a Ray worker process
    monkeypatch.setattr(grid_mod, "run", lambda *a, **k: pytest.fail("trained in the driver"))
    summary = run_grid([*good, missing], root=store.root, backend="ray")
    assert (summary["trained"], summary["skipped"], summary["failed"]) == (2, 0, 1)
    assert "absent.csv" in summary["errors"][missing.run_id]
    for config in good:
        result = store.load(config.run_id)
        assert result["config"]["seed"] == config.seed and "HR@10" in result["test"]

    again = run_grid(good, root=store.root, backend="ray")
    assert (again["trained"], again["skipped"], again["failed"]) == (0, 2, 0)
