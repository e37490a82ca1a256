"""Stored-result look-alikes for the chapter tests (fixtures only; never in results/)."""

from __future__ import annotations

import numpy as np

from seqnb.metrics import summarize_ranks


def fake_result(config, rng: np.random.Generator, users: int = 400):
    """A stored-result look-alike for ``config`` (test fixture only; never in results/)."""
    ranks = {key: rng.integers(1, 256, users).astype(np.uint8)
             for key in ("test_ranks", "test_shuffled_window_ranks",
                         "test_shuffled_history_ranks")}
    result = {
        "run_id": config.run_id,
        "config": config.to_dict(),
        "valid_curve": [{"epoch": 5, "metrics": {"NDCG@10": 0.01, "HR@10": 0.02}},
                        {"epoch": 10, "metrics": {"NDCG@10": 0.02, "HR@10": 0.03}}],
        "best_epoch": 10,
        "test": summarize_ranks(ranks["test_ranks"]),
        "test_shuffled_window": summarize_ranks(ranks["test_shuffled_window_ranks"]),
        "test_shuffled_history": summarize_ranks(ranks["test_shuffled_history_ranks"]),
        "extras": {},
        "dataset_stats": {},
        "provenance": {"device": "fake device (test fixture)", "started": "2026-01-02T03:04:05",
                       "wall_seconds": 1.0, "epochs_run": config.epochs},
    }
    if config.model == "sasrec":
        att = rng.dirichlet(np.ones(config.maxlen), size=config.num_blocks)
        result["extras"] = {"attention_by_offset": att.tolist(),
                            "attention_on_last": att[:, 0].tolist()}
    return result, ranks


def fake_frequency_result(config, dataset, rng: np.random.Generator):
    """:func:`fake_result` for a Chapter 6 ``config`` on ``dataset``, with the per-item arrays:
    norms that grow with frequency for MF-BPR and stay flat for SASRec."""
    result, ranks = fake_result(config, rng, users=dataset.num_users)
    frequency = dataset.item_frequency.astype(np.int32)
    growth = np.log1p(frequency) if config.model == "mf_bpr" else np.zeros(len(frequency))
    norms = np.where(frequency > 0, 1 + growth, 0.1) + 0.01 * rng.random(len(frequency))
    arrays = {"test_ranks": ranks["test_ranks"], "item_norms": norms.astype(np.float16),
              "item_frequency": frequency}
    return result, arrays
