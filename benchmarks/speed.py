"""Training and evaluation speed of seqnb's SASRec, with the arithmetic it cannot avoid.

    python benchmarks/speed.py                       # Beauty, CPU (and CUDA when present)
    python benchmarks/speed.py --device cpu --epochs 3 --json out.json
    python benchmarks/speed.py --parts neighbour      # only MF-BPR and the neighbour average

For each configuration it times, side by side in the same process:
  * one training epoch (Note A: CE over all items at every position, maxlen 50, batch 512;
    Note B: BCE with one negative, batch 256), in fp32 and in bf16;
  * the epoch's unavoidable arithmetic: the logits matmuls ``positions x items x dim``
    (forward, and the two backward products), timed as bare matmuls of the same shapes
    (the fastest of three layouts and several chunk sizes), alternately with the epoch:
    ``epoch_over_bare`` is the median ratio of the pairs;
  * a plain ``F.cross_entropy`` on the same logits, for scale;
  * full-ranking evaluation of every user (seen items removed);
  * MF-BPR epochs (Note B: BPR, batch 256), plain and with neighbour-averaged embeddings,
    and the neighbour average itself (forward + backward of the item table) in seqnb's
    factorised form ``R_band^T (R E)`` next to the explicit band rows of ``A = R^T R``
    multiplied with ``torch.sparse.mm``;
and reports peak memory. bf16 is skipped on CPUs without bf16 matrix units, where PyTorch
emulates it.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from seqnb.config import note_a, note_b
from seqnb.data import load_dataset
from seqnb.models import build_model
from seqnb.models.embeddings import cooccurrence_band
from seqnb.results import _git_commit
from seqnb.train import Evaluator, device_name, native_bf16, prepare, train_epoch


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _best_of(fn, repeats: int, dev: torch.device) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        tick = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - tick)
    return best


def bare_logits_matmuls(positions: int, items: int, dim: int, dtype: torch.dtype,
                        dev: torch.device) -> tuple[Callable[[], None], str]:
    """Z = H E^T, dH = G E, dE = G^T H over all positions (no softmax), in the fastest of
    three layouts (rows x items; items x rows, with the hidden gradient as ``G^T E`` or
    as seqnb's CE forms it, ``E^T G``) and several chunk sizes: that setting
    (each the best of 2 after a warm-up) as a callable, and its name."""
    H = torch.randn(positions, dim, device=dev).to(dtype)
    E = torch.randn(items, dim, device=dev).to(dtype)
    E_T = E.T.contiguous()

    def rows_first(chunk: int) -> None:
        dE = torch.zeros(items, dim, device=dev, dtype=dtype)
        for s in range(0, positions, chunk):
            h = H[s : s + chunk]
            z = h @ E_T  # forward logits (c, V)
            _ = z @ E  # gradient w.r.t. hidden
            dE += z.T @ h  # gradient w.r.t. item table

    def items_first(chunk: int) -> None:
        dE = torch.zeros(items, dim, device=dev, dtype=dtype)
        for s in range(0, positions, chunk):
            h = H[s : s + chunk]
            z = E @ h.T  # forward logits, transposed (V, c)
            _ = z.T @ E
            dE += z @ h

    def items_first_table_left(chunk: int) -> None:  # the layout seqnb's CE uses
        dE = torch.zeros(items, dim, device=dev, dtype=dtype)
        for s in range(0, positions, chunk):
            h = H[s : s + chunk]
            z = E @ h.T  # forward logits, transposed (V, c)
            _ = E_T @ z  # gradient w.r.t. hidden, transposed (d, c)
            dE += z @ h

    chunks = (128, 256, 1024, 4096) if dev.type == "cpu" else (1024, 4096, 16384)
    settings = {}
    for layout in (rows_first, items_first, items_first_table_left):
        for chunk in chunks:
            fn = lambda f=layout, c=chunk: f(c)  # noqa: E731
            fn()  # warm-up
            settings[f"{layout.__name__}, chunk {chunk}"] = (_best_of(fn, 2, dev), fn)
    name = min(settings, key=lambda k: settings[k][0])
    return settings[name][1], name


def paired_timings(
    first: Callable[[], Any], second: Callable[[], Any], rounds: int, dev: torch.device
) -> list[tuple[float, float]]:
    """Seconds of ``first`` and ``second`` timed alternately, ``rounds`` pairs.

    On a shared (virtual) machine the speed drifts by 10-20 % within minutes: the ratio of
    two timings taken back to back is steadier than that of two taken minutes apart.
    """
    return [(_best_of(first, 1, dev), _best_of(second, 1, dev)) for _ in range(rounds)]


def plain_cross_entropy(positions: int, items: int, dim: int, dtype: torch.dtype,
                        dev: torch.device, chunk: int = 16384) -> float:
    """Seconds for the same matmuls followed by a plain F.cross_entropy, batch by batch."""
    H = torch.randn(positions, dim, device=dev, requires_grad=True)
    E = torch.randn(items, dim, device=dev, requires_grad=True)
    y = torch.randint(0, items, (positions,), device=dev)

    def run() -> None:
        for s in range(0, positions, chunk):
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                z = H[s : s + chunk] @ E.T
            F.cross_entropy(z.float(), y[s : s + chunk]).backward()

    return _best_of(run, 1, dev)


def peak_memory_mb(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


PARTS = ("note_a", "note_b", "eval", "neighbour")


def bench(
    dataset_name: str, dev: torch.device, epochs: int, parts: tuple[str, ...] = PARTS
) -> list[dict[str, Any]]:
    ds = load_dataset(dataset_name)
    rows = []
    precisions = ("fp32", "bf16") if native_bf16(dev) else ("fp32",)
    sasrec = {"note_a": ("Note A (CE, batch 512)", note_a), "note_b": ("Note B (BCE, batch 256)", note_b)}
    for label, make in [sasrec[part] for part in sasrec if part in parts]:
        for precision in precisions:
            config = make(dataset_name, precision=precision, device=str(dev))
            trainee = prepare(config, ds, dev)
            train_epoch(trainee)  # warm-up (allocations, first-touch)
            positions = int((trainee.Y > 0).sum())
            row: dict[str, Any] = {"config": label, "precision": precision}
            epoch = lambda t=trainee: train_epoch(t)  # noqa: E731
            if config.loss != "ce":
                row["epoch_s"] = round(_best_of(epoch, epochs, dev), 2)
            else:
                dtype = torch.float32 if precision == "fp32" else torch.bfloat16
                bare, setting = bare_logits_matmuls(positions, ds.num_items + 1,
                                                    config.embedding_dim, dtype, dev)
                # each epoch next to a bare run: the ratio is the median of the pairs
                pairs = paired_timings(epoch, bare, epochs, dev)
                ratios = [e / b for e, b in pairs]
                row["epoch_s"] = round(min(e for e, _ in pairs), 2)
                row["bare_logits_matmuls_s"] = round(min(b for _, b in pairs), 2)
                row["bare_setting"] = setting
                row["epoch_over_bare"] = round(float(np.median(ratios)), 2)
                row["epoch_over_bare_pairs"] = [round(r, 2) for r in ratios]
                row["plain_F.cross_entropy_s"] = round(
                    plain_cross_entropy(positions, ds.num_items + 1, config.embedding_dim,
                                        dtype, dev), 2)
            row["positions"] = positions
            rows.append(row)
    if "eval" in parts:
        config = note_a(dataset_name, device=str(dev))
        trainee = prepare(config, ds, dev)
        evaluator = Evaluator(ds, "test", config.maxlen, remove_seen=True, device=dev)
        evaluator.ranks(trainee.model)  # warm-up
        rows.append({
            "config": f"full-ranking evaluation, {ds.num_users} users x {ds.num_items} items",
            "precision": "fp32",
            "eval_s": round(_best_of(lambda: evaluator.ranks(trainee.model), 3, dev), 3),
        })
    if "neighbour" in parts:
        rows.extend(bench_neighbour_averaging(ds, dev, epochs))
    for row in rows:
        row["peak_memory_mb"] = round(peak_memory_mb(dev))
        row["native_bf16"] = native_bf16(dev)
    return rows


def explicit_band_product(table, ds, band: tuple[int, int]):
    """The explicit alternative: the band rows of A_norm as a torch.sparse matrix."""
    freq = ds.item_frequency
    items = np.flatnonzero((freq >= band[0]) & (freq <= band[1]))
    items = items[items > 0]
    A = cooccurrence_band(ds.train_sequences, ds.num_items, items).tocoo()
    A_t = torch.sparse_coo_tensor(np.vstack([A.row, A.col]), A.data.astype(np.float32),
                                  A.shape).coalesce().to(table.weight.device)
    index = torch.from_numpy(items).to(table.weight.device)

    def forward():
        own = table.weight
        return own.index_copy(0, index, torch.sparse.mm(A_t, own))

    return forward, int(A.nnz)


def bench_neighbour_averaging(ds, dev: torch.device, epochs: int) -> list[dict[str, Any]]:
    """MF-BPR epochs (plain, bands [0, 30] and [3, 100000]) and the neighbour average, factorised
    vs explicit."""
    rows: list[dict[str, Any]] = []
    for band in (None, (0, 30), (3, 100_000)):
        config = note_b(ds.name, model="mf_bpr", loss="bpr", smooth_band=band, device=str(dev))
        trainee = prepare(config, ds, dev)
        train_epoch(trainee)
        rows.append({
            "config": "Note B MF-BPR (BPR, batch 256)" + (f", band {list(band)}" if band else ""),
            "precision": "fp32",
            "epoch_s": round(_best_of(lambda t=trainee: train_epoch(t), epochs, dev), 2),
            "positions": int(trainee.Y.shape[0]),
        })
    for band in ((0, 30), (0, 100_000)):
        model = build_model(note_b(ds.name, model="mf_bpr", loss="bpr", smooth_band=band), ds)
        table = model.items.to(dev)
        explicit, nnz = explicit_band_product(table, ds, band)
        row: dict[str, Any] = {
            "config": f"neighbour average, band {list(band)}: table forward + backward",
            "precision": "fp32",
            "band_items": len(table.band_items),
            "nnz_R": int(table.R.rows_index.numel()),
            "nnz_A_band": nnz,
        }
        for name, fn in (("factorised_ms", table.table), ("explicit_sparse_mm_ms", explicit)):
            step = lambda fn=fn: fn().sum().backward()  # noqa: E731
            step()
            row[name] = round(1000 * _best_of(step, 5, dev), 2)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="Amazon2014Beauty_550_LOU")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: both if present)")
    parser.add_argument(
        "--epochs", type=int, default=3,
        help="timed epochs: best of, and for the CE epochs as many pairs with the bare matmuls",
    )
    parser.add_argument("--json", default=None, help="write the table as JSON here")
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS),
        help="what to time (default all): SASRec Note A / Note B epochs, full-ranking "
        "evaluation, MF-BPR epochs and the neighbour-averaged table",
    )
    args = parser.parse_args()
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report = {
        "machine": platform.platform(),
        "torch": torch.__version__,
        "seqnb_commit": _git_commit(),
        "command": "python benchmarks/speed.py " + " ".join(sys.argv[1:]),
        "runs": [],
    }
    for name in devices:
        dev = torch.device(name)
        for row in bench(args.dataset, dev, args.epochs, tuple(args.parts)):
            row["device"] = device_name(dev)
            report["runs"].append(row)
            print(json.dumps(row))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
