"""seqnb.data.download against archives served from 127.0.0.1 by the test itself."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import threading
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import seqnb.data as sd
from seqnb.data import (
    ChecksumError,
    DatasetNotAvailableError,
    DownloadError,
    fetch,
    get_spec,
    load_dataset,
)
from seqnb.data.download import extract_zip
from seqnb.data.registry import _REGISTRY


class Server:
    """A tiny HTTP server for in-memory files; counts the requests it answers."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEQNB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_fetch_verifies_and_reuses(server: Server, cache: Path) -> None:
    body = make_zip({"a/b.txt": b"hello\n"})
    server.files["/files/small.zip"] = body
    url = server.url("/files/small.zip")
    path = fetch(url, sha256=sha256(body), md5=hashlib.md5(body).hexdigest())
    assert path == cache / "downloads" / "small.zip"
    assert path.read_bytes() == body
    assert fetch(url, sha256=sha256(body)) == path  # verified copy reused
    assert server.requests == ["/files/small.zip"]
    assert extract_zip(path, cache / "data") == [cache / "data" / "a" / "b.txt"]
    assert (cache / "data" / "a" / "b.txt").read_bytes() == b"hello\n"
    other = fetch(url, "elsewhere/copy.zip", force=True)
    assert other == cache / "elsewhere" / "copy.zip" and len(server.requests) == 2


def test_checksum_mismatch_is_an_error_and_leaves_nothing(server: Server, cache: Path) -> None:
    server.files["/x.zip"] = b"not what you expected"
    wrong = "0" * 64
    with pytest.raises(ChecksumError, match="sha256 mismatch") as info:
        fetch(server.url("/x.zip"), sha256=wrong)
    message = str(info.value)
    assert wrong in message and sha256(b"not what you expected") in message
    assert server.url("/x.zip") in message
    assert list((cache / "downloads").iterdir()) == []  # no file, no temporary left
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        fetch(server.url("/x.zip"), md5="0" * 32)


def test_http_error_and_unsafe_archive(server: Server, cache: Path, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(server.url("/missing.zip"))
    evil = tmp_path / "evil.zip"
    evil.write_bytes(make_zip({"../escape.txt": b"x"}))
    with pytest.raises(DownloadError, match="unsafe member"):
        extract_zip(evil, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DownloadError, match="not a valid zip"):
        extract_zip(broken, tmp_path / "out")


def _fake_movielens() -> tuple[bytes, list[list[int]]]:
    """An ML-1M-shaped archive: 6 users x 6 movies survive the 5-core filter; user 7
    (2 ratings) and movie 99 (1 rating) do not. Lines are written newest first."""
    rows, expected = [], []
    for user in range(1, 7):
        movies = [(user + k) % 6 + 1 for k in range(6)]
        expected.append(movies)
        rows += [(user, movie, 1 + k % 5, 1000 * user + 10 * k) for k, movie in enumerate(movies)]
    rows += [(1, 99, 5, 1005), (7, 1, 3, 50), (7, 2, 3, 60)]
    ratings = "".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in reversed(rows))
    movies = "".join(f"{m}::Movie {m} (2000)::Drama|Comedy\n" for m in [*range(1, 7), 99])
    archive = make_zip(
        {
            "ml-1m/ratings.dat": ratings.encode(),
            "ml-1m/movies.dat": movies.encode("iso-8859-1"),
            "ml-1m/README": b"fake\n",
        }
    )
    return archive, expected


def test_load_with_download_end_to_end(
    server: Server, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, expected = _fake_movielens()
    server.files["/datasets/movielens/ml-1m.zip"] = archive
    name = "MovieLens1M_550_LOU"
    spec = dataclasses.replace(
        get_spec(name), url=server.url("/datasets/movielens/ml-1m.zip"), sha256=sha256(archive)
    )
    spec = dataclasses.replace(spec, md5=hashlib.md5(archive).hexdigest(), checksums=())
    monkeypatch.setitem(_REGISTRY, name, spec)
    empty_root = tmp_path / "no-data-here"
    empty_root.mkdir()

    with pytest.raises(DatasetNotAvailableError, match="download=True"):
        load_dataset(name, root=empty_root)  # download defaults to False
    assert server.requests == []

    try:
        ds = load_dataset(name, root=empty_root, download=True)
        assert server.requests == ["/datasets/movielens/ml-1m.zip"]
        assert (cache / "data" / "ml-1m" / "ratings.dat").is_file()
        assert (cache / "downloads" / "ml-1m.zip").read_bytes() == archive
        assert (ds.num_users, ds.num_items, ds.num_interactions) == (6, 6, 36)
        assert [s.tolist() for s in ds.sequences] == expected  # ids 1..6 kept, time order
        assert ds.original_user_ids == ["1", "2", "3", "4", "5", "6"]
        assert ds.item_titles[3] == "Movie 3 (2000)"
        assert ds.item_attributes[3] == ["Drama", "Comedy"]
        assert ds.meta["format"] == "movielens_ratings"
        assert ds.meta["root"] == str(cache / "data")
        # a fresh process-level load finds the cached copy without the network
        sd.clear_cache(name)
        again = load_dataset(name, root=empty_root)
        assert [s.tolist() for s in again.sequences] == expected
        assert len(server.requests) == 1
    finally:
        sd.clear_cache(name)


def test_loading_never_downloads_implicitly(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("urlopen must not be called")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    for name in ("MovieLens1M_550_LOU", "Amazon2014Beauty_554_LOU"):
        with pytest.raises(DatasetNotAvailableError):
            load_dataset(name, root=tmp_path)
    sd.dataset_table(root=tmp_path)  # the overview never fetches either
