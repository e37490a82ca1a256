"""Run configurations: one plain, validated, hashable description of a training run.

The key names are shared by Python, papermill parameters and the command line. ``chapter``
and ``device`` are labels: they do not enter the run id, so chapters that need the same
training run share one stored result.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

MODELS = ("sasrec", "zero_block", "stamp", "stamp_only_ht", "stamp_only_mt", "mf_bpr")
LOSSES = ("ce", "bce", "bpr")
LAYOUTS = ("all_positions", "rolled")
PRECISIONS = ("fp32", "bf16")
LABEL_KEYS = ("chapter", "device")
FLOAT_KEYS = ("dropout", "lr", "weight_decay")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run (defaults: Note A's SASRec)."""

    dataset: str
    model: str = "sasrec"
    loss: str = "ce"
    maxlen: int = 50
    num_blocks: int = 2
    num_heads: int = 1
    embedding_dim: int = 64
    dropout: float = 0.6
    epochs: int = 100
    batch_size: int = 512
    lr: float = 5e-4
    weight_decay: float = 1e-8
    num_negatives: int = 1
    seed: int = 0
    eval_every: int = 5
    layout: str = "all_positions"
    # Chapter 1's rolled samples use only the last `rolled_window` training items per user.
    rolled_window: int = 50
    # Chapter 6: items whose training frequency lies in [l, u] use the neighbour average.
    smooth_band: tuple[int, int] | None = None
    smooth_self_loops: bool = True
    # None = remove seen items unless the data set has repeat interactions.
    remove_seen: bool | None = None
    precision: str = "fp32"
    # Train on a seeded random subsample of this many users (smoke runs); None = all.
    max_users: int | None = None
    # labels (not part of the identity)
    chapter: str = ""
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.smooth_band is not None and not isinstance(self.smooth_band, tuple):
            object.__setattr__(self, "smooth_band", tuple(self.smooth_band))
        # One canonical type per number, so that lr=1 and lr=1.0 (or YAML's `lr: 5e-4`,
        # which PyYAML reads as a string) give the same run id.
        for key in FLOAT_KEYS:
            value = getattr(self, key)
            if isinstance(value, (int, str)) and not isinstance(value, bool):
                try:
                    object.__setattr__(self, key, float(value))
                except ValueError:
                    _fail(key, value, "a number")
        validate(self)
        # where the self term cannot act, both settings are one model: one run id
        if not self.smooth_self_loops and not self_term_acts(self.smooth_band):
            object.__setattr__(self, "smooth_self_loops", True)

    # ----- identity ----------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """The canonical dict that defines the run (labels removed)."""
        d = asdict(self)
        for key in LABEL_KEYS:
            d.pop(key)
        if d["smooth_band"] is not None:
            d["smooth_band"] = [int(x) for x in d["smooth_band"]]
        return d

    @property
    def run_id(self) -> str:
        """Stable id: readable prefix + hash of the canonical configuration.

        The prefix is the data set and model name with every character other than
        ``[A-Za-z0-9_.-]`` replaced by ``_`` (e.g. ``csv:/data/mine.csv``), so the id is
        always a safe file name; the hash covers the full, unaltered configuration.
        """
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
        prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.dataset)[-60:].strip("._-") or "data"
        return f"{prefix}-{self.model}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["smooth_band"] is not None:
            d["smooth_band"] = list(d["smooth_band"])
        return d

    def with_(self, **changes: Any) -> RunConfig:
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown configuration key(s) {unknown}; allowed keys: {sorted(known)}"
            )
        return cls(**d)


def unique_runs(configs: Iterable[RunConfig]) -> list[RunConfig]:
    """The first configuration of each run id, in order (chapters share runs)."""
    first: dict[str, RunConfig] = {}
    for c in configs:
        first.setdefault(c.run_id, c)
    return list(first.values())


def self_term_acts(band: tuple[int, int] | None) -> bool:
    """Whether ``smooth_self_loops`` can change a model: only with a band that holds trained
    items (u >= 1). A band of never-trained items only has empty rows of A either way."""
    return band is not None and band[1] >= 1


def note_a(dataset: str, **changes: Any) -> RunConfig:
    """SPEC's Note A configuration (maxlen, zero block, STAMP, shuffle chapters)."""
    return RunConfig(dataset=dataset, **changes)


def note_b(dataset: str, **changes: Any) -> RunConfig:
    """SPEC's Note B configuration (embedding frequency chapter)."""
    base = dict(
        dropout=0.2, epochs=200, batch_size=256, lr=1e-3, weight_decay=0.0, loss="bce"
    )
    base.update(changes)
    return RunConfig(dataset=dataset, **base)


def _fail(key: str, value: Any, expected: str) -> None:
    raise ValueError(f"invalid {key}={value!r}: expected {expected}")


def validate(c: RunConfig) -> None:
    """Reject impossible values before any work starts, naming the allowed ones."""
    if not isinstance(c.dataset, str) or not c.dataset:
        _fail("dataset", c.dataset, "a data set name (see `python -m seqnb datasets`)")
    if c.model not in MODELS:
        _fail("model", c.model, f"one of {list(MODELS)}")
    if c.loss not in LOSSES:
        _fail("loss", c.loss, f"one of {list(LOSSES)}")
    if c.layout not in LAYOUTS:
        _fail("layout", c.layout, f"one of {list(LAYOUTS)}")
    if c.precision not in PRECISIONS:
        _fail("precision", c.precision, f"one of {list(PRECISIONS)}")
    positive = {
        "maxlen": c.maxlen,
        "num_heads": c.num_heads,
        "embedding_dim": c.embedding_dim,
        "epochs": c.epochs,
        "batch_size": c.batch_size,
        "num_negatives": c.num_negatives,
        "eval_every": c.eval_every,
        "rolled_window": c.rolled_window,
    }
    for key, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _fail(key, value, "a positive integer")
    if isinstance(c.num_blocks, bool) or not isinstance(c.num_blocks, int) or c.num_blocks < 0:
        _fail("num_blocks", c.num_blocks, "an integer >= 0")
    if c.embedding_dim % c.num_heads:
        _fail("num_heads", c.num_heads, f"a divisor of embedding_dim={c.embedding_dim}")
    if not 0.0 <= float(c.dropout) < 1.0:
        _fail("dropout", c.dropout, "a number in [0, 1)")
    if not float(c.lr) > 0:
        _fail("lr", c.lr, "a positive number")
    if float(c.weight_decay) < 0:
        _fail("weight_decay", c.weight_decay, "a number >= 0")
    if isinstance(c.seed, bool) or not isinstance(c.seed, int):
        _fail("seed", c.seed, "an integer")
    if c.max_users is not None and (not isinstance(c.max_users, int) or c.max_users < 2):
        _fail("max_users", c.max_users, "None or an integer >= 2")
    if c.smooth_band is not None:
        band = c.smooth_band
        if len(band) != 2 or not all(isinstance(x, int) for x in band) or band[0] > band[1]:
            _fail("smooth_band", band, "None or [l, u] with integers l <= u")
        if c.model not in ("sasrec", "mf_bpr"):
            _fail("smooth_band", band, "None unless model is 'sasrec' or 'mf_bpr'")
    if not isinstance(c.smooth_self_loops, bool):
        _fail("smooth_self_loops", c.smooth_self_loops, "true or false")
    if c.layout == "rolled" and c.model == "mf_bpr":
        _fail("layout", c.layout, "'all_positions' for mf_bpr")
