"""Each chapter's grid of runs, for each profile.

    chapter_configs("maxlen", "full", datasets=[...], seeds=[0, 1, 2]) -> [RunConfig, ...]

Profiles: ``smoke`` (300 users of a real data set, 2 epochs, a reduced grid, CPU; results go
to a throw-away store), ``book`` (the ``full`` grid, loaded from ``results/`` only) and
``full`` (trains everything on the full data). Chapters ask for their runs through here, and
so do ``python -m seqnb grid`` and ``python -m seqnb reproduce``, so the book and the command
line always agree on what a chapter shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seqnb.config import RunConfig, note_a, note_b, self_term_acts

PROFILES = ("smoke", "book", "full")
TRAINING_CHAPTERS = ("maxlen", "zero_block", "stamp", "shuffle", "embedding_frequency")
CHAPTERS = ("maxlen", "zero_block", "stamp", "shuffle", "movielens_genres", "embedding_frequency")

# The data sets of the notes, in the order the book shows them; the first seven are held.
HELD = (
    "Amazon2014Beauty_550_LOU",
    "Amazon2014Toys_550_LOU",
    "Amazon2014Sports_550_LOU",
    "Amazon2014Tools_550_LOU",
    "Yelp2019_550_S3Rec",
    "LastFM",
    "MovieLens1M_550_LOU",
)
NOT_HELD = (
    "Amazon2014Beauty_554_LOU",
    "Amazon2014Beauty_1000_LOU",
    "Amazon2014Tools_554_LOU",
    "Amazon2014Toys_554_LOU",
    "RetailrocketTransaction_500_LOU",
    "Yelp2018_10100_LOU",
    "Steam_550_LOU",
    "Tmall2016Buy_550_LOU",
)
FREQUENCY_DATASETS = ("Amazon2014Beauty_550_LOU", "Amazon2014Beauty_1000_LOU", "Yelp2019_550_S3Rec")

MAXLEN_GRID = (1, 2, 3, 5, 10, 20, 30, 50)
BLOCK_GRID = (4, 3, 2, 1)
STAMP_VARIANTS = ("stamp", "stamp_only_ht", "stamp_only_mt")
# Band edges for Chapter 6b: every [l, u] with l <= u drawn from these training frequencies.
# An edge of OPEN_END or more stands for "no upper limit" (no held data set trains an item
# that often), so a band starting there selects no item and is left out of the grid.
OPEN_END = 100_000
BAND_EDGES = (0, 1, 3, 10, 30, OPEN_END)
SHUFFLE_BLOCKS = 2

SMOKE_USERS = 300
SMOKE_EPOCHS = 2
SMOKE_MAXLEN_GRID = (1, 2, 5)
SMOKE_BLOCK_GRID = (2, 1)
SMOKE_BAND_EDGES = (0, 2, OPEN_END)


@dataclass(frozen=True)
class ProfileSettings:
    """What a profile changes, beyond the grids."""

    train: bool  # may missing results be trained?
    isolated_store: bool  # smoke results go to a temporary store, never to results/
    overrides: dict[str, Any]


def profile_settings(profile: str) -> ProfileSettings:
    if profile == "smoke":
        return ProfileSettings(
            train=True,
            isolated_store=True,
            overrides={
                "max_users": SMOKE_USERS,
                "epochs": SMOKE_EPOCHS,
                "eval_every": 1,
                "device": "cpu",
            },
        )
    if profile == "book":
        return ProfileSettings(train=False, isolated_store=False, overrides={})
    if profile == "full":
        return ProfileSettings(train=True, isolated_store=False, overrides={})
    raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")


def rolled_window(dataset: str) -> int:
    """Chapter 1 rolls over the last 50 training items (100 for MovieLens)."""
    return 100 if dataset.startswith("MovieLens") else 50


def band_grid(edges: tuple[int, ...] = BAND_EDGES) -> list[tuple[int, int]]:
    """Every band ``[l, u]`` with ``l <= u`` drawn from ``edges``, except those starting at
    an open end (``l >= OPEN_END``): they select no item, so they are the unmodified model."""
    return [(lo, hi) for i, lo in enumerate(edges) for hi in edges[i:] if lo < OPEN_END]


def chapter_configs(
    chapter: str,
    profile: str = "full",
    datasets: list[str] | tuple[str, ...] | None = None,
    seeds: list[int] | tuple[int, ...] = (0, 1, 2),
    grid: list[Any] | tuple[Any, ...] | None = None,
    **overrides: Any,
) -> list[RunConfig]:
    """The runs ``chapter`` shows under ``profile``.

    ``grid`` replaces the chapter's main grid (maxlen values, block counts, STAMP variants,
    or band edges); ``overrides`` set any other configuration key for every run.
    """
    if chapter not in TRAINING_CHAPTERS:
        raise ValueError(f"chapter must be one of {list(TRAINING_CHAPTERS)}, got {chapter!r}")
    settings = profile_settings(profile)
    smoke = profile == "smoke"
    if datasets is None:
        default = (
            tuple(d for d in FREQUENCY_DATASETS if d in HELD)
            if chapter == "embedding_frequency"
            else HELD
        )
        datasets = default[:1] if smoke else default
    changes = {**settings.overrides, **overrides, "chapter": chapter}
    configs: list[RunConfig] = []
    for dataset in datasets:
        for seed in seeds:
            common = {**changes, "seed": seed}
            if chapter == "maxlen":
                values = grid or (SMOKE_MAXLEN_GRID if smoke else MAXLEN_GRID)
                for maxlen in values:
                    configs.append(
                        note_a(
                            dataset,
                            layout="rolled",
                            maxlen=int(maxlen),
                            rolled_window=rolled_window(dataset),
                            **common,
                        )
                    )
            elif chapter == "zero_block":
                values = grid or (SMOKE_BLOCK_GRID if smoke else BLOCK_GRID)
                for blocks in values:
                    configs.append(note_a(dataset, num_blocks=int(blocks), **common))
                configs.append(note_a(dataset, model="zero_block", **common))
            elif chapter == "stamp":
                for variant in grid or STAMP_VARIANTS:
                    configs.append(note_a(dataset, model=variant, **common))
            elif chapter == "shuffle":
                configs.append(note_a(dataset, num_blocks=SHUFFLE_BLOCKS, **common))
            elif chapter == "embedding_frequency":
                configs.extend(frequency_configs(dataset, common, smoke, grid))
    return configs


def frequency_configs(
    dataset: str, common: dict[str, Any], smoke: bool, edges: Any = None
) -> list[RunConfig]:
    """Chapter 6: MF-BPR and SASRec (Note B), plain and with every neighbour-averaged band."""
    edges = tuple(edges) if edges else (SMOKE_BAND_EDGES if smoke else BAND_EDGES)
    models = {
        "mf_bpr": dict(model="mf_bpr", loss="bpr"),
        "sasrec": dict(model="sasrec", loss="bce"),
    }
    configs = []
    for kind in models.values():
        base = {**common, **kind}
        configs.append(note_b(dataset, **base))
        for band in band_grid(edges):
            configs.append(note_b(dataset, smooth_band=band, **base))
            if self_term_acts(band):  # else the two settings are one run
                configs.append(note_b(dataset, smooth_band=band, smooth_self_loops=False,
                                      **base))
    return configs
