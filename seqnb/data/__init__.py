"""Data sets: raw-file readers, k-core filtering, re-indexing and a registry of names.

>>> from seqnb.data import load_dataset
>>> ds = load_dataset("Amazon2014Beauty_550_LOU")   # doctest: +SKIP
>>> ds.num_users, ds.num_items, ds.num_interactions  # doctest: +SKIP
(22363, 12101, 198502)

The data root is the ``root`` argument, else the ``SEQNB_DATA`` environment variable, else
the first existing of ``<repo>/../shared/data``, ``./../shared/data`` and ``./data``.
Nothing is downloaded unless ``download=True`` is passed.
"""

from __future__ import annotations

import os
import warnings
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import REPO_ROOT
from .dataset import Dataset, from_sequences
from .download import (
    ChecksumError,
    DownloadError,
    cache_dir,
    cached_data_dir,
    fetch,
    fetch_dataset,
    file_sha256,
)
from .kcore import codes, group_sequences, kcore_mask, reindex
from .loaders import (
    FORMATS,
    INTERACTION_READERS,
    DataFormatError,
    read_item2attributes,
    read_movielens_movies,
)
from .registry import (
    DatasetSpec,
    RawSource,
    UnknownDatasetError,
    get_spec,
    list_datasets,
)
from .registry import register_dataset as _register

__all__ = [
    "DATA_ENV",
    "FORMATS",
    "ChecksumError",
    "DataFormatError",
    "Dataset",
    "DatasetNotAvailableError",
    "DatasetSpec",
    "DownloadError",
    "RawSource",
    "UnknownDatasetError",
    "cache_dir",
    "clear_cache",
    "data_root",
    "dataset_table",
    "fetch",
    "fetch_dataset",
    "format_dataset_table",
    "from_sequences",
    "get_spec",
    "list_datasets",
    "load_dataset",
    "locate",
    "register_dataset",
]

DATA_ENV = "SEQNB_DATA"
PathArg = str | PathLike[str]


class DatasetNotAvailableError(FileNotFoundError):
    """The raw files of a registered data set are not where the loader looks for them."""


# ----- where the data lives ---------------------------------------------------------------
def default_roots() -> list[Path]:
    """The data-root candidates used when neither ``root`` nor ``SEQNB_DATA`` is given."""
    cwd = Path.cwd()
    return [REPO_ROOT.parent / "shared" / "data", cwd.parent / "shared" / "data", cwd / "data"]


def data_root(root: PathArg | None = None) -> Path:
    """The data root: ``root``, else ``$SEQNB_DATA``, else the first existing default
    (``<repo>/../shared/data``, ``<cwd>/../shared/data``, ``<cwd>/data``), else the first
    default."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    candidates = default_roots()
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _root_origin(root: PathArg | None) -> str:
    if root is not None:
        return "given as the root argument"
    if os.environ.get(DATA_ENV):
        return f"from the {DATA_ENV} environment variable"
    listed = ", ".join(dict.fromkeys(str(c) for c in default_roots()))
    return f"default: first existing of {listed}"


def _candidates(path: Path) -> list[Path]:
    """``path`` and its gzip sibling."""
    if path.suffix == ".gz":
        return [path, path.with_suffix("")]
    return [path, path.with_name(path.name + ".gz")]


def _find(base: Path, relative: str) -> Path | None:
    return next((p for p in _candidates(base / relative) if p.is_file()), None)


def locate(name: str, root: PathArg | None = None) -> tuple[RawSource, Path, Path] | None:
    """``(source, base directory, interactions file)`` of the first available source of
    ``name``: each source is looked for under the data root, then in the download cache.
    None when nothing is found."""
    spec = get_spec(name)
    bases = list(dict.fromkeys([data_root(root), cached_data_dir()]))
    for base in bases:
        for source in spec.sources:
            found = _find(base, source.path)
            if found is not None:
                return source, base, found
    return None


def _not_available(spec: DatasetSpec, root: PathArg | None) -> DatasetNotAvailableError:
    base = data_root(root)
    looked = [str(base / s.path) for s in spec.sources]
    looked += [str(cached_data_dir() / s.path) for s in spec.sources]
    held = (
        "It is one of the data sets held in the shared data folder; is the data root right?"
        if spec.held
        else "It is not held in the shared data folder (not available offline)."
    )
    download = (
        f" It has a public download: load_dataset({spec.name!r}, download=True) fetches "
        f"{spec.url} into {cache_dir()}."
        if spec.url
        else ""
    )
    formats = "; or ".join(f"{s.path}: {FORMATS[s.format]}" for s in spec.sources)
    return DatasetNotAvailableError(
        f"data set {spec.name!r}: raw file not found. Looked for: {'; '.join(looked)} "
        f"(a .gz sibling is accepted too). Data root: {base} ({_root_origin(root)}); set it "
        f"with load_dataset(..., root=PATH) or the {DATA_ENV} environment variable. {held} "
        f"Expected format: {formats}. How to obtain it: {spec.obtain}{download}"
    )


# ----- loading ---------------------------------------------------------------------------
def register_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Register ``spec`` (e.g. your own CSV: ``RawSource("interactions_csv", "mine.csv")``)
    so that :func:`load_dataset` knows its name; ``replace`` overrides an existing name."""
    _register(spec, replace=replace)
    clear_cache(spec.name)
    return spec


_CACHE: dict[tuple[str, str], Dataset] = {}


def clear_cache(name: str | None = None) -> None:
    """Forget the data sets loaded in this process (all, or those called ``name``)."""
    for key in [k for k in _CACHE if name is None or k[0] == name]:
        del _CACHE[key]


def load_dataset(name: str, root: PathArg | None = None, download: bool = False) -> Dataset:
    """Load a registered data set (see :func:`list_datasets`) from its raw files.

    Applies the registry recipe (rating threshold, iterative user/item k-core), re-indexes
    items to ``1..num_items`` (ascending raw id) and users to ``0..num_users-1``, and maps
    item attributes/titles to the new ids. Results are cached per (name, data root) for
    the process, so repeated calls are free; the returned object is shared, do not modify
    its arrays. ``download=True`` fetches a public raw file into the cache when it is
    missing; nothing is ever fetched otherwise.

    Raises:
        UnknownDatasetError: no such name (the message lists the known ones).
        DatasetNotAvailableError: the raw file is not there (the message says where it was
            looked for and how to obtain it).
        DataFormatError: the raw file is empty, truncated or malformed.
    """
    spec = get_spec(name)
    key = (name, str(data_root(root).resolve()))
    if key not in _CACHE:
        _CACHE[key] = _load(spec, root, download)
    return _CACHE[key]


def _load(spec: DatasetSpec, root: PathArg | None, download: bool) -> Dataset:
    found = locate(spec.name, root)
    if found is None and download and spec.url:
        fetch_dataset(spec)
        found = locate(spec.name, root)
    if found is None:
        raise _not_available(spec, root)
    source, base, path = found
    frame = INTERACTION_READERS[source.format](path)
    raw_interactions = len(frame)
    if spec.min_rating is not None:
        frame = frame[frame["rating"] >= spec.min_rating]
    users, items = frame["user"].to_numpy(), frame["item"].to_numpy()
    keep = kcore_mask(codes(users), codes(items), spec.user_core, spec.item_core)
    if not keep.any():
        raise ValueError(
            f"data set {spec.name!r}: no interaction of {path} survives the recipe "
            f"(min_rating={spec.min_rating}, {spec.user_core}/{spec.item_core}-core)"
        )
    user_codes, user_labels = reindex(users[keep])
    item_codes, item_labels = reindex(items[keep], start=1)
    sequences = group_sequences(user_codes, item_codes)

    files = [path]
    attributes = titles = None
    if source.attributes is not None:
        attr_path = _find(base, source.attributes)
        if attr_path is None:
            raise DatasetNotAvailableError(
                f"data set {spec.name!r}: found {path} but not its item metadata file "
                f"{base / source.attributes} ({FORMATS[source.attributes_format or '']}). "
                f"How to obtain it: {spec.obtain}"
            )
        files.append(attr_path)
        attributes, titles = _item_metadata(source, attr_path, item_labels)

    checksums = {_relative(p, base): file_sha256(p) for p in files}
    _check_manifest(spec, base, checksums)
    meta = {
        "spec": spec.name,
        "description": spec.description,
        "format": source.format,
        "root": str(base),
        "files": list(checksums),
        "sha256": checksums,
        "user_core": spec.user_core,
        "item_core": spec.item_core,
        "min_rating": spec.min_rating,
        "raw_interactions": raw_interactions,
        "rating_removed": raw_interactions - len(frame),
        "kcore_removed": int(len(frame) - keep.sum()),
        "repeat_interactions": spec.repeat_interactions,
        "remove_seen": spec.remove_seen,
    }
    return Dataset(
        name=spec.name,
        sequences=sequences,
        num_items=len(item_labels),
        item_attributes=attributes,
        item_titles=titles,
        original_item_ids=[""] + [str(x) for x in item_labels],
        original_user_ids=[str(u) for u in user_labels],
        meta=meta,
    )


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _item_metadata(
    source: RawSource, path: Path, item_labels: np.ndarray
) -> tuple[list[list[str]], list[str] | None]:
    """Attributes (and titles) indexed by the re-indexed item id (index 0 = padding)."""
    keys = [str(x) for x in item_labels]
    if source.attributes_format == "movielens_movies":
        movies = read_movielens_movies(path)
        ids = [str(i) for i in movies["item"]]
        genres = dict(zip(ids, movies["genres"], strict=True))
        names = dict(zip(ids, movies["title"], strict=True))
        return [[]] + [list(genres.get(k, [])) for k in keys], [""] + [
            names.get(k, k) for k in keys
        ]
    table = read_item2attributes(path)
    return [[]] + [list(table.get(k, [])) for k in keys], None


def _check_manifest(spec: DatasetSpec, base: Path, checksums: dict[str, str]) -> None:
    expected = dict(spec.checksums)
    for rel, got in checksums.items():
        if rel in expected and expected[rel] != got:
            warnings.warn(
                f"{base / rel}: sha256 {got} differs from the one in the shared data "
                f"MANIFEST ({expected[rel]}); {spec.name} may not match the book's numbers",
                stacklevel=3,
            )


# ----- overview --------------------------------------------------------------------------
TABLE_COLUMNS = [
    "name", "held", "present", "users", "items", "interactions",
    "mean_length", "density", "repeats", "status", "path",
]  # fmt: skip


def dataset_table(root: PathArg | None = None) -> pd.DataFrame:
    """One row per registered data set: whether its files are present, and its size.

    Data sets whose files are absent have status ``not available offline`` and the path
    where the file was expected; one that fails to load has status ``error: ...``.
    """
    rows = []
    for spec in list_datasets():
        row: dict[str, object] = {"name": spec.name, "held": spec.held, "present": False}
        found = locate(spec.name, root)
        if found is None:
            row["status"] = "not available offline"
            row["path"] = str(data_root(root) / spec.path)
        else:
            row["present"] = True
            row["path"] = str(found[2])
            try:
                stats = load_dataset(spec.name, root).statistics()
            except (DataFormatError, DatasetNotAvailableError, ValueError) as exc:
                row["status"] = f"error: {exc}"
            else:
                row.update(
                    users=stats["users"],
                    items=stats["items"],
                    interactions=stats["interactions"],
                    mean_length=stats["mean_length"],
                    density=stats["density"],
                    repeats=stats["repeats"],
                    status="loaded",
                )
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=TABLE_COLUMNS)
    for col in ("users", "items", "interactions"):
        table[col] = table[col].astype("Int64")
    return table


def format_dataset_table(root: PathArg | None = None) -> str:
    """The registry as a plain-text table (what ``python -m seqnb datasets`` prints)."""
    table = dataset_table(root)
    header = ["data set", "users", "items", "interactions", "mean len", "density", "files"]
    lines = []
    for r in table.itertuples(index=False):
        if r.status == "loaded":
            cells = [
                r.name,
                f"{r.users:,}",
                f"{r.items:,}",
                f"{r.interactions:,}",
                f"{r.mean_length:.1f}",
                f"{100 * r.density:.3f}%",
                "present" + (" (repeats)" if r.repeats else ""),
            ]
        else:
            note = "not available offline" if not r.present else r.status
            cells = [r.name, "-", "-", "-", "-", "-", f"{note}: {r.path}"]
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    widths[-1] = 0  # the last column is free text

    def fmt(cells: list[str]) -> str:
        out = [str(cells[0]).ljust(widths[0])]
        out += [str(c).rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        return "  ".join([*out, str(cells[-1])]).rstrip()

    rule = "-" * (sum(widths[:-1]) + 2 * (len(widths) - 1) + len("files"))
    root_line = f"data root: {data_root(root)} ({_root_origin(root)})"
    return "\n".join([root_line, fmt(header), rule, *(fmt(c) for c in lines)])
