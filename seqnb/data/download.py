"""Explicit downloads of public raw files into a local cache.

Nothing here runs unless asked for: ``load_dataset(name, download=True)`` (or the CLI's
download flag) is the only caller. Files land in the cache directory (``SEQNB_CACHE``, else
``~/.cache/seqnb``): archives under ``downloads/``, the data files under ``data/`` laid out
like the data root, so the loader finds ``data/ml-1m/ratings.dat`` after a fetch.
Writes are atomic (temporary file + rename) and checksums are verified where known.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from os import PathLike
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from .registry import DatasetSpec

__all__ = [
    "ChecksumError",
    "DownloadError",
    "cache_dir",
    "cached_data_dir",
    "extract_zip",
    "fetch",
    "fetch_dataset",
    "file_sha256",
]

_CHUNK = 1 << 20


class DownloadError(OSError):
    """A download failed (network, HTTP status, incomplete transfer, bad archive)."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected checksum."""


def cache_dir() -> Path:
    """``SEQNB_CACHE`` if set, else ``~/.cache/seqnb``."""
    env = os.environ.get("SEQNB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "seqnb"


def cached_data_dir() -> Path:
    """Where fetched data files live, laid out like the data root."""
    return cache_dir() / "data"


def file_sha256(path: str | PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str,
    dest: str | PathLike[str] | None = None,
    sha256: str | None = None,
    *,
    md5: str | None = None,
    timeout: float = 60.0,
    force: bool = False,
) -> Path:
    """Download ``url`` to ``dest`` and return its path.

    ``dest``: None = ``<cache>/downloads/<file name of the URL>``; a relative path is taken
    under the cache directory. An existing ``dest`` whose checksum matches (or that has no
    known checksum) is reused without a download unless ``force``. The file is written to a
    temporary name next to ``dest`` and renamed only after the checksums (``sha256``,
    ``md5``; each only when given) match; a mismatch raises :class:`ChecksumError` and
    leaves nothing behind.
    """
    if dest is None:
        name = PurePosixPath(urllib.parse.urlparse(url).path).name or "download"
        target = cache_dir() / "downloads" / name
    else:
        target = Path(dest).expanduser()
        if not target.is_absolute():
            target = cache_dir() / target
    if target.exists() and not force and _matches(target, sha256, md5):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got_sha256, got_md5 = _download(url, out, timeout)
        _verify(url, target, "sha256", sha256, got_sha256)
        _verify(url, target, "md5", md5, got_md5)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _download(url: str, out: BinaryIO, timeout: float) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": "seqnb"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            size = 0
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                sha.update(chunk)
                md5.update(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"download of {url} failed: {reason}. Check the network, or download the file "
            "by hand (see the data set's 'obtain' text)."
        ) from exc
    if expected is not None and int(expected) != size:
        raise DownloadError(
            f"download of {url} is incomplete: {size} of {int(expected)} bytes received"
        )
    return sha.hexdigest(), md5.hexdigest()


def _verify(url: str, target: Path, kind: str, expected: str | None, got: str) -> None:
    if expected is not None and got.lower() != expected.lower():
        raise ChecksumError(
            f"{kind} mismatch for {url}: expected {expected.lower()}, got {got}. The file "
            f"was not saved to {target}. The server may serve a different version, or the "
            "transfer was corrupted; retry, or check the file's origin."
        )


def _matches(path: Path, sha256: str | None, md5: str | None) -> bool:
    if sha256 is not None and file_sha256(path) != sha256.lower():
        return False
    return md5 is None or _file_md5(path) == md5.lower()


def extract_zip(archive: str | PathLike[str], dest_dir: str | PathLike[str]) -> list[Path]:
    """Unpack ``archive`` under ``dest_dir`` (each member written atomically) and return
    the extracted files. Members with absolute paths or ``..`` are refused."""
    dest = Path(dest_dir)
    written: list[Path] = []
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                parts = PurePosixPath(info.filename).parts
                if info.filename.startswith(("/", "\\")) or ".." in parts or not parts:
                    raise DownloadError(f"{archive}: refusing unsafe member {info.filename!r}")
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
                try:
                    with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                        for chunk in iter(lambda src=src: src.read(_CHUNK), b""):
                            out.write(chunk)
                    os.replace(tmp_name, target)
                finally:
                    Path(tmp_name).unlink(missing_ok=True)
                written.append(target)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{archive} is not a valid zip archive ({exc})") from exc
    return written


def fetch_dataset(spec: DatasetSpec, timeout: float = 60.0) -> Path:
    """Fetch ``spec.url`` into the cache and return the cached data directory.

    A ``.zip`` is verified and unpacked under :func:`cached_data_dir`; any other file is
    saved at ``<cached data dir>/<spec.path>``.
    """
    if not spec.url:
        raise DownloadError(f"{spec.name} has no public download. {spec.obtain}".rstrip())
    data_dir = cached_data_dir()
    if urllib.parse.urlparse(spec.url).path.endswith(".zip"):
        archive = fetch(spec.url, None, spec.sha256, md5=spec.md5, timeout=timeout)
        extract_zip(archive, data_dir)
    else:
        fetch(spec.url, data_dir / spec.path, spec.sha256, md5=spec.md5, timeout=timeout)
    return data_dir
