"""One reader per raw file format.

Every interaction reader returns a :class:`pandas.DataFrame` with columns ``user`` and
``item`` (raw ids: int64 where the file has integers, else str) and, where the format has
them, ``rating`` and ``timestamp``. Rows are in chronological order within each user:
per-user line formats keep the file's order; timestamped formats are grouped by user (in order
of first appearance) and sorted by timestamp with a stable sort, so ties keep the file's
order.

Readers accept plain or gzip-compressed files (detected by the gzip magic bytes).
Malformed input raises :class:`DataFormatError` naming the file and, where it applies,
the 1-based line number.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

PathArg = str | PathLike[str]

__all__ = [
    "FORMATS",
    "DataFormatError",
    "read_amazon_ratings",
    "read_interactions_csv",
    "read_item2attributes",
    "read_movielens_movies",
    "read_movielens_ratings",
    "read_retailrocket_events",
    "read_user_lines",
]


class DataFormatError(ValueError):
    """A raw data file is empty, truncated or malformed.

    Attributes:
        path: the offending file.
        line: 1-based line number, or None when the problem is not tied to one line.
    """

    def __init__(self, path: PathArg, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {message}")


# ----- bytes ---------------------------------------------------------------------------------
_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: PathArg) -> bytes:
    """The (decompressed) content of ``path``; an empty or broken file is an error."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            good = _partial_gunzip(raw)
            lines = good.count(b"\n")
            raise DataFormatError(
                path,
                lines + 1,
                f"the gzip stream is truncated or corrupt ({exc}); only {lines} complete "
                "lines could be read. Obtain the file again.",
            ) from exc
    else:
        data = raw
    if not data.strip():
        raise DataFormatError(path, None, "the file is empty")
    return data


def _partial_gunzip(raw: bytes) -> bytes:
    """Whatever a broken gzip stream yields before it breaks."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)
    except zlib.error:
        return b""


# ----- S3Rec per-user lines -------------------------------------------------------------------
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\n\r\v\f")] = True
_WS_TO_NEWLINE = bytes.maketrans(b" \t\r\v\f", b"\n\n\n\n\n")


def read_user_lines(path: PathArg) -> pd.DataFrame:
    """S3Rec layout: one line per user, ``user_id item_id item_id ...``, chronological.

    Returns columns ``user``, ``item`` (int64), one row per item token, in file order.
    A line with a user id but no item, a non-integer token, or a user id that appears on
    two lines is a :class:`DataFormatError`.
    """
    data = read_bytes(path)
    buf = np.frombuffer(data, dtype=np.uint8)
    space = _WHITESPACE[buf]
    starts = np.flatnonzero(~space & np.concatenate(([True], space[:-1])))
    newlines = np.flatnonzero(buf == ord("\n"))
    token_line = np.searchsorted(newlines, starts)  # 0-based line of every token
    try:
        values = pd.read_csv(
            io.BytesIO(data.translate(_WS_TO_NEWLINE)),
            header=None,
            dtype=np.int64,
            quoting=csv.QUOTE_NONE,
            na_filter=False,
            engine="c",
        )[0].to_numpy()
    except (ValueError, pd.errors.ParserError) as exc:
        _diagnose_integer_tokens(path, data)
        raise DataFormatError(path, None, f"cannot parse integer ids ({exc})") from exc
    if len(values) != len(starts):
        _diagnose_integer_tokens(path, data)
        raise DataFormatError(path, None, "cannot split the file into integer tokens")

    first = np.flatnonzero(np.diff(token_line, prepend=-1))  # first token of each line
    counts = np.diff(np.append(first, len(values)))
    if (counts < 2).any():
        line = int(token_line[first[np.argmax(counts < 2)]]) + 1
        raise DataFormatError(
            path, line, "expected a user id followed by at least one item id, found 1 field"
        )
    users = values[first]
    uniq, seen = np.unique(users, return_counts=True)
    if (seen > 1).any():
        dup = uniq[np.argmax(seen > 1)]
        lines = token_line[first[users == dup]][:2] + 1
        raise DataFormatError(
            path, int(lines[1]), f"user {dup} already appeared on line {int(lines[0])}"
        )
    is_item = np.ones(len(values), dtype=bool)
    is_item[first] = False
    return pd.DataFrame({"user": np.repeat(users, counts - 1), "item": values[is_item]})


def _diagnose_integer_tokens(path: Path, data: bytes) -> None:
    """Slow path: raise for the first token that is not a 64-bit integer."""
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        for token in line.split():
            if not _is_int64(token):
                raise DataFormatError(path, lineno, f"{_show(token)} is not an integer id")


def _is_int64(token: bytes | str) -> bool:
    try:
        value = int(token)
    except ValueError:
        return False
    return -(2**63) <= value < 2**63


def _show(token: bytes | str, limit: int = 40) -> str:
    text = token.decode("utf-8", "replace") if isinstance(token, bytes) else token
    return repr(text if len(text) <= limit else text[:limit] + "...")


# ----- S3Rec item2attributes ------------------------------------------------------------------
def read_item2attributes(path: PathArg) -> dict[str, list[str]]:
    """S3Rec ``*_item2attributes.json``: ``{"item_id": [attribute_id, ...]}``.

    Returns raw item id (str) -> attribute labels (``str`` of each attribute id), duplicates
    removed, first-seen order kept (LastFM's tag lists repeat tags).
    """
    data = read_bytes(path)
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, None, f"not UTF-8 text ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataFormatError(path, 1, "expected a JSON object {item_id: [attribute, ...]}")
    out: dict[str, list[str]] = {}
    for key, labels in obj.items():
        if not isinstance(labels, list) or not {type(x) for x in labels} <= {int, str}:
            raise DataFormatError(
                path, None, f"item {key!r}: expected a list of attribute ids, got {labels!r}"
            )
        names = list(map(str, labels))
        out[str(key)] = names if len(set(names)) == len(names) else list(dict.fromkeys(names))
    return out


# ----- MovieLens --------------------------------------------------------------------------------
def read_movielens_movies(path: PathArg) -> pd.DataFrame:
    """GroupLens ``movies.dat`` (``MovieID::Title::Genres``, ISO-8859-1).

    Returns columns ``item`` (int64), ``title`` (str), ``genres`` (list of str, in file
    order; ``(no genres listed)`` gives an empty list).
    """
    text = read_bytes(path).decode("iso-8859-1")
    items: list[int] = []
    titles: list[str] = []
    genres: list[list[str]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != 3:
            raise DataFormatError(
                path, lineno, f"expected 3 fields MovieID::Title::Genres, found {len(parts)}"
            )
        if not _is_int64(parts[0].strip()):
            raise DataFormatError(path, lineno, f"{_show(parts[0])} is not an integer MovieID")
        items.append(int(parts[0]))
        titles.append(parts[1])
        tags = parts[2].strip()
        genres.append([] if tags in ("", "(no genres listed)") else tags.split("|"))
    return pd.DataFrame(
        {"item": np.array(items, dtype=np.int64), "title": titles, "genres": genres}
    )


def read_movielens_ratings(path: PathArg) -> pd.DataFrame:
    """GroupLens ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``, no header).

    Returns columns ``user``, ``item`` (int64), ``rating`` (float64), ``timestamp`` (int64),
    grouped by user, by timestamp within a user (stable).
    """
    path = Path(path)
    data = read_bytes(path)
    if b"," in data:
        line = data[: data.index(b",")].count(b"\n") + 1
        raise DataFormatError(path, line, "unexpected ',' (fields are separated by '::')")
    columns = [("user", "int"), ("item", "int"), ("rating", "float"), ("timestamp", "int")]
    frame = _read_table(path, data.replace(b"::", b","), ",", columns, header=False, shown_sep="::")
    return _chronological(frame)


# ----- Amazon 2014 ratings ----------------------------------------------------------------------
def read_amazon_ratings(path: PathArg) -> pd.DataFrame:
    """Amazon 2014 "ratings only" CSV (McAuley et al.): ``user,item,rating,timestamp``,
    no header, e.g. ``ratings_Beauty.csv``.

    Returns columns ``user``, ``item`` (str), ``rating`` (float64), ``timestamp`` (int64),
    grouped by user, by timestamp within a user (stable). Apply the rating threshold afterwards.
    """
    path = Path(path)
    columns = [("user", "label"), ("item", "label"), ("rating", "float"), ("timestamp", "int")]
    return _chronological(_read_table(path, read_bytes(path), ",", columns, header=False))


# ----- generic CSV ------------------------------------------------------------------------------
GENERIC_COLUMNS = ("user", "item", "timestamp")


def read_interactions_csv(path: PathArg) -> pd.DataFrame:
    """Generic comma-separated ``user,item,timestamp`` file for your own data.

    * Header optional. Without a header the file has exactly three columns in that order.
      With a header (detected when its first line names ``user``, ``item`` and
      ``timestamp``), those columns are used wherever they are, an optional ``rating``
      column too, and other columns are ignored.
    * ``user`` / ``item``: any labels (integers are kept as integers).
    * ``timestamp``: a number (e.g. Unix seconds) or a date/time string such as
      ``2018-03-01 12:00:00`` (converted to nanoseconds since the epoch).

    Returns ``user``, ``item``, ``timestamp`` (and ``rating``), grouped by user, by
    timestamp within a user (stable: ties keep the file's order).
    """
    path = Path(path)
    data = read_bytes(path)
    first_line = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    names = [f.strip().strip('"').lower() for f in first_line.split(",")]
    if set(GENERIC_COLUMNS) <= set(names):
        wanted = {"user": "id", "item": "id", "timestamp": "time", "rating": "float"}
        columns = [(n, wanted.get(n)) for n in names]
        frame = _read_table(path, data, ",", columns, header=True)
    else:
        columns = [("user", "id"), ("item", "id"), ("timestamp", "time")]
        frame = _read_table(path, data, ",", columns, header=False)
    return _chronological(frame)


# ----- Retailrocket -----------------------------------------------------------------------------
RETAILROCKET_COLUMNS = ("timestamp", "visitorid", "event", "itemid")


def read_retailrocket_events(path: PathArg, event: str = "transaction") -> pd.DataFrame:
    """Retailrocket ``events.csv`` (header ``timestamp,visitorid,event,itemid,transactionid``;
    timestamps in milliseconds). Keeps rows whose ``event`` equals ``event``.

    Returns ``user`` (visitorid), ``item`` (itemid), ``timestamp``, grouped by user, by
    timestamp within a user (stable).
    """
    path = Path(path)
    data = read_bytes(path)
    first_line = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    names = [f.strip().lower() for f in first_line.split(",")]
    missing = [c for c in RETAILROCKET_COLUMNS if c not in names]
    if missing:
        raise DataFormatError(
            path,
            1,
            f"expected a header naming {', '.join(RETAILROCKET_COLUMNS)} (missing: "
            f"{', '.join(missing)})",
        )
    kinds = {"timestamp": "int", "visitorid": "id", "event": "str", "itemid": "id"}
    frame = _read_table(path, data, ",", [(n, kinds.get(n)) for n in names], header=True)
    frame = frame[frame["event"] == event]
    frame = frame.rename(columns={"visitorid": "user", "itemid": "item"})
    frame = frame[["user", "item", "timestamp"]].reset_index(drop=True)
    return _chronological(frame)


# ----- shared table machinery -------------------------------------------------------------------
Column = tuple[str, str | None]  # (name, kind); kind None = column ignored


def _read_table(
    path: Path,
    data: bytes,
    sep: str,
    columns: Sequence[Column],
    header: bool,
    shown_sep: str | None = None,
) -> pd.DataFrame:
    """Parse a delimited table with pandas' C parser; on any problem, find the bad line.

    Kinds: ``id`` (int64 when every value is an integer, else str), ``label`` (str, kept
    verbatim), ``str``, ``int``, ``float``, ``time`` (a number, or a date/time string
    converted to int64 nanoseconds since the epoch, UTC).
    """
    names = [name for name, _ in columns]
    kinds = [kind for _, kind in columns]
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            sep=sep,
            header=None,
            skiprows=1 if header else 0,
            dtype={j: str for j, k in enumerate(kinds) if k in ("label", "str", None)},
            keep_default_na=False,
            na_values={j: [""] for j, k in enumerate(kinds) if k in ("int", "float", "time")},
            engine="c",
        )
        if frame.shape[1] != len(columns):
            raise ValueError(f"expected {len(columns)} columns, found {frame.shape[1]}")
        frame.columns = names
        frame = frame[[n for n, k in columns if k is not None]]
        for name, kind in columns:
            if kind is not None:
                frame[name] = _check_column(frame[name], kind)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        _diagnose_table(path, data, sep, columns, header, shown_sep or sep)
        raise DataFormatError(path, None, f"cannot parse the table ({exc})") from exc
    if frame.empty:
        raise DataFormatError(path, None, "the file has no data rows")
    return frame


def _check_column(col: pd.Series, kind: str | None) -> pd.Series:
    """The column converted to its kind; ValueError when a value does not fit."""
    numeric = pd.api.types.is_numeric_dtype(col)
    if kind in ("id", "label"):
        if numeric and not pd.api.types.is_integer_dtype(col):
            raise ValueError("ids must be integers or text")
        if not numeric and (col.isna().any() or col.eq("").any()):
            raise ValueError("empty id")
        return col if numeric else col.astype(str)
    if col.isna().any():
        raise ValueError("missing value")
    if kind == "str":
        return col.astype(str)
    if kind == "time" and not numeric:
        times = pd.to_datetime(col, utc=True, format="mixed")
        return times.dt.as_unit("ns").astype("int64")
    if not numeric:
        raise ValueError("non-numeric value")
    if kind == "int" and not pd.api.types.is_integer_dtype(col):
        raise ValueError("non-integer value")
    return col


_CHECKS: dict[str, Callable[[str], bool]] = {
    "id": lambda v: v != "",
    "label": lambda v: v != "",
    "str": lambda v: True,
    "int": lambda v: _is_int64(v.strip()),
    "float": lambda v: _is_float(v),
    "time": lambda v: _is_float(v) or _is_datetime(v),
}
_EXPECTED = {
    "id": "a non-empty id",
    "label": "a non-empty id",
    "int": "an integer",
    "float": "a number",
    "time": "a number or a date/time",
}


def _is_float(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return bool(np.isfinite(number))


def _is_datetime(value: str) -> bool:
    try:
        return not pd.isna(pd.Timestamp(value.strip()))
    except (ValueError, TypeError):
        return False


def _diagnose_table(
    path: Path,
    data: bytes,
    sep: str,
    columns: Sequence[Column],
    header: bool,
    shown_sep: str,
) -> None:
    """Slow path: raise a :class:`DataFormatError` for the first bad line, if any."""
    lines = data.decode("utf-8", "replace").splitlines()
    rows = 0
    for lineno, line in enumerate(lines[int(header) :], start=int(header) + 1):
        if not line.strip():
            continue
        rows += 1
        fields = next(csv.reader([line], delimiter=sep)) if '"' in line else line.split(sep)
        if len(fields) != len(columns):
            layout = shown_sep.join(name for name, _ in columns)
            raise DataFormatError(
                path, lineno, f"expected {len(columns)} fields ({layout}), found {len(fields)}"
            )
        for (name, kind), value in zip(columns, fields, strict=True):
            if kind is not None and not _CHECKS[kind](value):
                raise DataFormatError(
                    path, lineno, f"{name} {_show(value)} is not {_EXPECTED[kind]}"
                )
    if rows == 0:
        raise DataFormatError(path, None, "the file has no data rows")


def _chronological(frame: pd.DataFrame) -> pd.DataFrame:
    """Group rows by user (users in order of first appearance), each user's rows by
    timestamp; the sort is stable, so equal timestamps keep the file's order."""
    users, _ = pd.factorize(frame["user"], sort=False)
    order = np.lexsort((frame["timestamp"].to_numpy(), users))
    return frame.iloc[order].reset_index(drop=True)


# ----- format table ------------------------------------------------------------------------------
FORMATS: dict[str, str] = {
    "s3rec_lines": "one line per user, `user_id item_id item_id ...` (whitespace separated, "
    "chronological), plain or .gz",
    "s3rec_item2attributes": 'JSON object {"item_id": [attribute_id, ...]}',
    "movielens_movies": "GroupLens movies.dat: MovieID::Title::Genres (ISO-8859-1)",
    "movielens_ratings": "GroupLens ratings.dat: UserID::MovieID::Rating::Timestamp",
    "amazon_ratings": "Amazon 2014 ratings CSV: user,item,rating,timestamp (no header)",
    "interactions_csv": "CSV user,item,timestamp (header optional; timestamp numeric or "
    "a date/time string)",
    "retailrocket_events": "Retailrocket events.csv: timestamp,visitorid,event,itemid,"
    "transactionid (header)",
}
"""Raw formats and their layout, keyed by the names the registry uses."""

INTERACTION_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "s3rec_lines": read_user_lines,
    "movielens_ratings": read_movielens_ratings,
    "amazon_ratings": read_amazon_ratings,
    "interactions_csv": read_interactions_csv,
    "retailrocket_events": read_retailrocket_events,
}
