"""The training loop: data on the device, trimmed batches, periodic full-ranking validation.

    train(config, dataset) -> TrainOutcome

* The whole training set lives as tensors on the device; a batch is an index slice.
* Left padding is skipped: samples are grouped by length (sorted within shuffled blocks of
  64 batches) and each batch is cut to its longest sequence. Position ids are kept as they
  would be with full padding, so the logits are unchanged (tested).
* Negatives are sampled on the device, rejecting the user's training items.
* Every ``eval_every`` epochs (and after the last) the validation split is ranked in full;
  the best state by NDCG@10 is kept, and the test split is ranked with it — plus the extra
  evaluations the chapters need (shuffled inputs, attention mass, embedding norms).
* Resumable: the state is checkpointed (atomically) at every validation.
* On CPU (Linux, glibc) memory freed by a step's tensors stays in the heap for the next
  step (:func:`retain_freed_memory`) instead of being mapped afresh, page fault by page fault.
"""

from __future__ import annotations

import copy
import ctypes
import os
import platform
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from seqnb.config import RunConfig
from seqnb.data.dataset import Dataset
from seqnb.losses import bpr, chunked_cross_entropy, sampled_bce
from seqnb.metrics import summarize_ranks
from seqnb.models import MFBPR, SASRec, build_model
from seqnb.sequences import left_pad, rolled_samples, shuffled_inputs

BLOCK_BATCHES = 64  # batches per shuffled block within which samples are sorted by length
EVAL_BATCH = {"cpu": 128, "cuda": 4096}  # users per ranking batch: CPU wants cache-sized blocks


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    return f"cpu ({model}, {torch.get_num_threads()} threads)"


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 in hardware (CUDA; CPUs with AVX512-BF16 or AMX).

    Elsewhere PyTorch emulates bf16 matmuls on the CPU, many times slower than fp32.
    """
    if device.type != "cpu":
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


_HEAP_RETAINED = False


def retain_freed_memory() -> bool:
    """Keep memory freed by tensors in the process's heap for reuse (glibc; elsewhere a no-op).

    By default glibc maps blocks of a few MB afresh for each allocation and trims freed
    memory back to the kernel, so a training step that allocates and frees the same few-MB
    tensors page-faults on every one of them: ~90,000 faults per Beauty CE epoch, and 5-15 %
    of its time in fault handling and the cache misses after it. Raising glibc's mmap
    threshold to its maximum (32 MiB) and its trim threshold to 2 GiB makes freed blocks
    reusable in place; the process then keeps its peak heap. Once per process; True if set.
    """
    global _HEAP_RETAINED
    if _HEAP_RETAINED or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return _HEAP_RETAINED
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # malloc.h
    ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20) == 1
    ok = libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok
    _HEAP_RETAINED = ok
    return ok


@dataclass
class TrainOutcome:
    """What one run produced (``seqnb.results`` turns it into the stored JSON)."""

    valid_curve: list[dict[str, Any]]
    best_epoch: int
    test: dict[str, float]
    extra_tests: dict[str, dict[str, float]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    epochs_run: int = 0
    train_seconds: float = 0.0
    device: str = ""
    best_state: dict[str, torch.Tensor] | None = None
    # one entry per process that trained this run (several when it was resumed): who ran
    # which epochs, where, for how long; the last is this process's
    segments: list[dict[str, Any]] = field(default_factory=list)


# ----- training samples ----------------------------------------------------------------------
def training_samples(config: RunConfig, dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs (S, maxlen), targets (S, maxlen), users (S,)) for the config's layout.

    ``all_positions``: one row per user: the last maxlen+1 training items give the input
    (all but the last) and the next item at every position. ``rolled``: Chapter 1's samples;
    the target sits in the last column only. Target 0 = no loss at that position.
    """
    train = dataset.train_sequences
    if config.layout == "rolled":
        inputs, targets, users = rolled_samples(train, config.maxlen, config.rolled_window)
        target_matrix = np.zeros_like(inputs)
        target_matrix[:, -1] = targets
        return inputs, target_matrix, users
    users = np.array([u for u, s in enumerate(train) if len(s) >= 2], dtype=np.int64)
    inputs = left_pad([train[u][:-1] for u in users], config.maxlen)
    targets = left_pad([train[u][1:] for u in users], config.maxlen)
    return inputs, targets, users


def length_sorted_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffle, sort by length inside blocks of BLOCK_BATCHES batches, cut, shuffle batches."""
    order = rng.permutation(len(lengths))
    block = batch_size * BLOCK_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), block):
        part = order[start : start + block]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


class NegativeSampler:
    """Uniform negatives over 1..V that avoid each user's training items (on the device)."""

    def __init__(self, dataset: Dataset, device: torch.device, rounds: int = 4) -> None:
        V = dataset.num_items
        keys = np.unique(
            np.concatenate(
                [u * (V + 1) + np.asarray(s) for u, s in enumerate(dataset.train_sequences)]
            )
        )
        self.keys = torch.from_numpy(keys).to(device)
        self.V = V
        self.rounds = rounds

    def _seen(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        q = users * (self.V + 1) + items
        pos = torch.searchsorted(self.keys, q).clamp(max=len(self.keys) - 1)
        return self.keys[pos] == q

    def sample(self, users: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """users (N,) -> (N, k) negatives."""
        shape = (users.shape[0], k)
        u = users[:, None].expand(shape)
        neg = torch.randint(1, self.V + 1, shape, device=users.device, generator=generator)
        for _ in range(self.rounds):
            bad = self._seen(u, neg)
            fresh = torch.randint(1, self.V + 1, shape, device=users.device, generator=generator)
            neg = torch.where(bad, fresh, neg)
        return neg


# ----- evaluation ------------------------------------------------------------------------------
class Evaluator:
    """Full-ranking evaluation of one split, batched by input length, seen items removed."""

    def __init__(
        self,
        dataset: Dataset,
        split: str,
        maxlen: int,
        remove_seen: bool,
        device: torch.device,
        inputs: list[np.ndarray] | None = None,
    ) -> None:
        inputs = dataset.inputs(split) if inputs is None else inputs
        self.device = device
        self.num_users = dataset.num_users
        self.targets = torch.from_numpy(dataset.targets(split)).to(device)
        self.users = torch.arange(dataset.num_users, device=device)
        padded = left_pad(inputs, maxlen)
        lengths = (padded > 0).sum(1)
        self.order = np.argsort(lengths, kind="stable")
        self.X = torch.from_numpy(padded).to(device)
        seen = dataset.inputs(split)  # what the user has interacted with before the target
        self.batches: list[tuple[torch.Tensor, int, torch.Tensor | None]] = []
        step = EVAL_BATCH.get(device.type, 1024)
        for start in range(0, len(self.order), step):
            idx = self.order[start : start + step]
            T = max(int(lengths[idx].max()), 1)
            excl = None
            if remove_seen:
                rows = np.concatenate([np.full(len(seen[u]), r) for r, u in enumerate(idx)])
                cols = np.concatenate([seen[u] for u in idx])
                excl = torch.from_numpy(np.vstack([rows, cols])).to(device)
            self.batches.append((torch.from_numpy(idx).to(device), T, excl))

    @torch.no_grad()
    def ranks(self, model: torch.nn.Module) -> torch.Tensor:
        """(num_users,) 1-based rank of each user's target."""
        model.eval()
        table = model.items.table()  # (V+1, d)
        table32 = table.float().contiguous()
        out = torch.empty(self.num_users, dtype=torch.long, device=self.device)
        for idx, T, excl in self.batches:
            if isinstance(model, MFBPR):
                h = model.user_vectors(self.users[idx])  # (B, d)
            else:
                h = model.hidden(self.X[idx, -T:], table, last_only=True)[:, -1]  # (B, d)
            # transposed scores, items x users: E h^T is the fast layout at small d on CPU
            scores = table32 @ h.float().T  # (V+1, B)
            cols = torch.arange(len(idx), device=self.device)
            t = self.targets[idx]
            target_score = scores[t, cols]
            scores[0] = float("-inf")
            if excl is not None:
                scores[excl[1], excl[0]] = float("-inf")
            scores[t, cols] = target_score
            beaten = (scores >= target_score[None, :]).view(torch.uint8)  # (V+1, B)
            out[idx] = beaten.sum(0, dtype=torch.int32).long()  # faster than count_nonzero
        return out


@torch.no_grad()
def last_position_attention(model: SASRec, X: torch.Tensor, batch: int = 1024) -> np.ndarray:
    """(num_blocks, maxlen) mean attention weight that the last position puts on the key
    ``offset`` steps back (offset 0 = itself), averaged over heads and users; offsets beyond
    a user's length get weight 0."""
    model.eval()
    L, maxlen = len(model.blocks), X.shape[1]
    total = torch.zeros(L, maxlen, dtype=torch.float64, device=X.device)
    for start in range(0, X.shape[0], batch):
        xb = X[start : start + batch]
        _, attention = model.hidden(xb, return_attention=True)
        for layer, w in enumerate(attention):  # w: (B, h, T, T)
            last = w[:, :, -1, :].mean(1)  # (B, T) over keys
            total[layer] += last.flip(-1).sum(0).double()  # offset 0 first
    return (total / X.shape[0]).cpu().numpy()


# ----- the loop ----------------------------------------------------------------------------------
def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class Trainee:
    """A model with its optimizer, its training tensors on the device, and its RNGs."""

    config: RunConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    X: torch.Tensor | None  # (S, maxlen) inputs; None for MF
    Y: torch.Tensor  # (S, maxlen) next-item targets, 0 = no loss (MF: (S, 1) items)
    U: torch.Tensor  # (S,) user of each sample
    lengths: np.ndarray  # (S,) real length of each sample (host side: batch shapes)
    sampler: NegativeSampler | None
    rng: np.random.Generator
    gen: torch.Generator
    device: torch.device


def prepare(config: RunConfig, dataset: Dataset, dev: torch.device) -> Trainee:
    """Seed, build the model and optimizer, and move the training samples to the device."""
    if dev.type == "cpu":
        retain_freed_memory()
    torch.manual_seed(config.seed)
    gen = torch.Generator(device=dev)
    gen.manual_seed(config.seed)
    model = build_model(config, dataset).to(dev)
    # The fused kernel updates every parameter in one pass: on CPU it is ~4x faster than
    # the per-op Adam, which dominates an MF-BPR step (benchmarks/speed.py).
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay,
        fused=dev.type in ("cpu", "cuda"),
    )
    X = None
    if config.model == "mf_bpr":
        users = np.concatenate([np.full(len(s), u) for u, s in enumerate(dataset.train_sequences)])
        lengths = np.ones(len(users), dtype=np.int64)
        Y = torch.from_numpy(np.concatenate(dataset.train_sequences)).to(dev)[:, None]
        U = torch.from_numpy(users).to(dev)
    else:
        inputs, targets, users = training_samples(config, dataset)
        lengths = (inputs > 0).sum(1)
        X = torch.from_numpy(inputs).to(dev)
        Y = torch.from_numpy(targets).to(dev)
        U = torch.from_numpy(users).to(dev)
    sampler = NegativeSampler(dataset, dev) if config.loss in ("bce", "bpr") else None
    return Trainee(config, model, optimizer, X, Y, U, lengths, sampler,
                   np.random.default_rng(config.seed), gen, dev)


def train_epoch(t: Trainee) -> float:
    """One pass over the training samples in trimmed, length-grouped batches; mean loss."""
    config, model, dev = t.config, t.model, t.device
    compute_dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32
    model.train()
    loss_sum = torch.zeros((), device=dev)
    batches = length_sorted_batches(t.lengths, config.batch_size, t.rng)
    last_only = config.layout == "rolled"
    for idx_np in batches:
        idx = torch.from_numpy(idx_np).to(dev, non_blocking=True)
        T = max(int(t.lengths[idx_np].max()), 1)
        with _autocast(dev, config.precision):
            # MF with a sampled loss scores a few hundred items: their rows are enough
            rows_only = t.X is None and config.loss != "ce"
            table = None if rows_only else model.items.table()  # (V+1, d)
            if t.X is None:  # MF: one (user, item) pair per sample
                users = t.U[idx]
                h = model.user_vectors(users)  # (B, d)
                y = t.Y[idx, 0]
            else:
                # rolled samples carry their loss on the last position only
                hidden = model.hidden(t.X[idx, -T:], table, last_only=last_only)  # (B, T', d)
                y_full = t.Y[idx, -hidden.shape[1] :]  # (B, T')
                where = y_full > 0
                h = hidden[where]  # (N, d) the positions that carry a loss
                y = y_full[where]
                users = t.U[idx][:, None].expand(-1, hidden.shape[1])[where]
        h = h.float()
        if config.loss == "ce":
            loss = chunked_cross_entropy(h, table.float(), y, compute_dtype=compute_dtype)
        else:
            negatives = t.sampler.sample(users, config.num_negatives, t.gen)  # (N, k)
            if table is None:  # the batch's distinct items, renumbered 0..n-1
                ids, inverse = torch.unique(torch.cat([y, negatives.flatten()]), return_inverse=True)
                table = model.items.rows(ids)  # (n, d)
                y, negatives = inverse[: len(y)], inverse[len(y) :].view_as(negatives)
            loss = (sampled_bce if config.loss == "bce" else bpr)(h, table.float(), y, negatives)
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.optimizer.step()
        loss_sum += loss.detach()
    return float(loss_sum) / max(len(batches), 1)


def train(
    config: RunConfig,
    dataset: Dataset,
    device: str | torch.device | None = None,
    progress: bool = True,
    checkpoint_dir: Path | None = None,
    provenance: dict[str, Any] | None = None,
) -> TrainOutcome:
    """Train ``config`` on ``dataset``; validate every ``eval_every`` epochs; test the best.

    ``provenance`` (e.g. start time, host, code commit) is recorded with the epochs this call
    trains in ``TrainOutcome.segments``, and kept in the resume checkpoint, so a run finished
    by a later process still says which process trained which epochs.
    """
    started = time.perf_counter()
    dev = pick_device(config.device if device is None else str(device))
    if config.precision == "bf16" and not native_bf16(dev):
        warnings.warn(
            f"precision='bf16' on a CPU without bf16 matrix units ({device_name(dev)}): "
            "PyTorch emulates it, several times slower than fp32; use precision='fp32'",
            stacklevel=2,
        )
    remove_seen = (not dataset.has_repeats) if config.remove_seen is None else config.remove_seen
    t = prepare(config, dataset, dev)
    model = t.model
    maxlen = 1 if config.model == "mf_bpr" else config.maxlen
    valid = Evaluator(dataset, "valid", maxlen, remove_seen, dev)

    # resume from the last validation checkpoint, if any
    state_path = checkpoint_dir / f"{config.run_id}.resume.pt" if checkpoint_dir else None
    start_epoch, curve, best = 1, [], {"ndcg": -1.0, "epoch": 0, "state": None}
    train_seconds = 0.0
    earlier_segments: list[dict[str, Any]] = []
    if state_path is not None and state_path.exists():
        # on the CPU: generator states must stay CPU tensors (on any device); the model
        # and optimizer states are copied to the device by load_state_dict
        saved = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        t.optimizer.load_state_dict(saved["optimizer"])
        start_epoch, curve, best = saved["epoch"] + 1, saved["curve"], saved["best"]
        t.rng.bit_generator.state = saved["numpy_rng"]
        t.gen.set_state(saved["torch_gen"])
        torch.set_rng_state(saved["torch_rng"])
        if dev.type == "cuda" and saved.get("cuda_rng") is not None:  # dropout's generator
            torch.cuda.set_rng_state(saved["cuda_rng"], dev)
        train_seconds = saved["train_seconds"]
        # checkpoints written before segments were recorded: what is known of that process
        earlier_segments = saved.get("segments") or [
            {"first_epoch": 1, "last_epoch": saved["epoch"], "recorded": False}
        ]

    def this_segment(last_epoch: int) -> dict[str, Any]:
        return {
            **(provenance or {}),
            "device": device_name(dev),
            "first_epoch": start_epoch,
            "last_epoch": last_epoch,
            "wall_seconds": round(time.perf_counter() - started, 2),
        }

    bar = tqdm(
        range(start_epoch, config.epochs + 1),
        desc=f"{config.model} {dataset.name}",
        disable=not progress,
        initial=start_epoch - 1,
        total=config.epochs,
        leave=False,
    )
    postfix: dict[str, str] = {}
    for epoch in bar:
        tick = time.perf_counter()
        postfix["loss"] = f"{train_epoch(t):.4f}"
        train_seconds += time.perf_counter() - tick
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            metrics = summarize_ranks(valid.ranks(model).cpu())
            curve.append({"epoch": epoch, "metrics": metrics})
            postfix["valid NDCG@10"] = f"{metrics['NDCG@10']:.4f}"
            if metrics["NDCG@10"] > best["ndcg"]:
                best = {
                    "ndcg": metrics["NDCG@10"],
                    "epoch": epoch,
                    "state": copy.deepcopy(model.state_dict()),
                }
            if state_path is not None:
                _atomic_torch_save(
                    {
                        "model": model.state_dict(),
                        "optimizer": t.optimizer.state_dict(),
                        "epoch": epoch,
                        "curve": curve,
                        "best": best,
                        "numpy_rng": t.rng.bit_generator.state,
                        "torch_gen": t.gen.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "cuda_rng": (torch.cuda.get_rng_state(dev) if dev.type == "cuda"
                                     else None),
                        "train_seconds": train_seconds,
                        "segments": [*earlier_segments, this_segment(epoch)],
                    },
                    state_path,
                )
        bar.set_postfix(postfix)
    bar.close()

    model.load_state_dict(best["state"])
    outcome = evaluate_best(model, config, dataset, dev, remove_seen)
    outcome.valid_curve = curve
    outcome.best_epoch = best["epoch"]
    outcome.epochs_run = config.epochs
    outcome.train_seconds = train_seconds
    outcome.best_state = best["state"]
    outcome.segments = [*earlier_segments, this_segment(config.epochs)]
    return outcome


RANK_CAP = 255


def stored_ranks(ranks: torch.Tensor) -> np.ndarray:
    """Per-user ranks as stored: uint8, ranks above 254 saved as 255. Exact for every
    metric @k with k <= 254 (the summary metrics, MRR included, are computed before)."""
    return ranks.clamp(max=RANK_CAP).numpy().astype(np.uint8)


def evaluate_best(
    model: torch.nn.Module,
    config: RunConfig,
    dataset: Dataset,
    dev: torch.device,
    remove_seen: bool,
) -> TrainOutcome:
    """Test metrics of the selected model, with the extra evaluations and per-user/item arrays."""
    is_mf = config.model == "mf_bpr"
    maxlen = 1 if is_mf else config.maxlen
    test_ranks = Evaluator(dataset, "test", maxlen, remove_seen, dev).ranks(model).cpu()
    outcome = TrainOutcome(
        valid_curve=[],
        best_epoch=0,
        test=summarize_ranks(test_ranks),
        device=device_name(dev),
    )
    outcome.arrays["test_ranks"] = stored_ranks(test_ranks)
    if not is_mf:
        test_inputs = dataset.inputs("test")
        for protocol in ("window", "history"):
            shuffled = shuffled_inputs(test_inputs, maxlen, protocol, seed=config.seed)
            ranks = Evaluator(dataset, "test", maxlen, remove_seen, dev, inputs=shuffled)
            r = ranks.ranks(model).cpu()
            outcome.extra_tests[f"test_shuffled_{protocol}"] = summarize_ranks(r)
            outcome.arrays[f"test_shuffled_{protocol}_ranks"] = stored_ranks(r)
    if isinstance(model, SASRec) and len(model.blocks) > 0:
        X = torch.from_numpy(left_pad(dataset.inputs("test"), maxlen)).to(dev)
        att = last_position_attention(model, X)
        outcome.extras["attention_by_offset"] = att.round(6).tolist()
        outcome.extras["attention_on_last"] = [float(a) for a in att[:, 0]]
    with torch.no_grad():
        norms = model.items.table().norm(dim=1).float().cpu().numpy()
    outcome.arrays["item_norms"] = norms.astype(np.float16)
    outcome.arrays["item_frequency"] = dataset.item_frequency.astype(np.int32)
    outcome.extras["remove_seen"] = bool(remove_seen)
    return outcome
