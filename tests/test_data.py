"""seqnb.data: real data sets against MANIFEST.md, readers, k-core, split, bad input."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import seqnb.data as sd
from seqnb.data import (
    DataFormatError,
    DatasetNotAvailableError,
    DatasetSpec,
    RawSource,
    UnknownDatasetError,
    data_root,
    dataset_table,
    format_dataset_table,
    from_sequences,
    get_spec,
    list_datasets,
    load_dataset,
    loaders,
)
from seqnb.data.kcore import group_sequences, kcore_mask, reindex
from seqnb.data.registry import _REGISTRY

# users / items / interactions as MANIFEST.md states them (ML-1M: after the 5-core filter)
MANIFEST_COUNTS = {
    "Amazon2014Beauty_550_LOU": (22_363, 12_101, 198_502),
    "Amazon2014Toys_550_LOU": (19_412, 11_924, 167_597),
    "Amazon2014Sports_550_LOU": (35_598, 18_357, 296_337),
    "Yelp2019_550_S3Rec": (30_431, 20_033, 316_354),
    "LastFM": (1_090, 3_646, 52_551),
    "Amazon2014Tools_550_LOU": (16_638, 10_217, 134_476),
    "MovieLens1M_550_LOU": (6_040, 3_416, 999_611),
}
S3REC_LAYOUT = [n for n in MANIFEST_COUNTS if n != "MovieLens1M_550_LOU"]
NOT_HELD = [
    "Amazon2014Beauty_554_LOU",
    "Amazon2014Beauty_1000_LOU",
    "Amazon2014Tools_554_LOU",
    "Amazon2014Toys_554_LOU",
    "RetailrocketTransaction_500_LOU",
    "Yelp2018_10100_LOU",
    "Steam_550_LOU",
    "Tmall2016Buy_550_LOU",
]


@pytest.fixture(scope="module")
def shared_root() -> Path:
    """The real data root; tests that need it skip (naming the path) where it is absent."""
    root = data_root()
    missing = [f for n in MANIFEST_COUNTS for f in [get_spec(n).sources[-1].path]
               if not (root / f).exists()]  # fmt: skip
    if missing:
        message = (
            f"shared data not found: {root / missing[0]} is missing (data root {root}; set "
            "SEQNB_DATA to the folder described by shared/data/MANIFEST.md)"
        )
        if os.environ.get("SEQNB_REQUIRE_DATA"):  # CI: missing data is a failure
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="module", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty download cache, so files fetched earlier on this machine change nothing."""
    cache = tmp_path_factory.mktemp("seqnb-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQNB_CACHE", str(cache))
        yield cache


@pytest.fixture
def add_spec(monkeypatch: pytest.MonkeyPatch):
    """Register temporary data sets for one test."""
    names: list[str] = []

    def add(spec: DatasetSpec) -> DatasetSpec:
        monkeypatch.setitem(_REGISTRY, spec.name, spec)
        names.append(spec.name)
        sd.clear_cache(spec.name)
        return spec

    yield add
    for name in names:
        sd.clear_cache(name)


def write(path: Path, text: str, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def as_lists(sequences: list[np.ndarray]) -> list[list[int]]:
    return [s.tolist() for s in sequences]


# ----- real data ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MANIFEST_COUNTS))
def test_held_data_set_counts_match_manifest(shared_root: Path, name: str) -> None:
    ds = load_dataset(name)
    assert (ds.num_users, ds.num_items, ds.num_interactions) == MANIFEST_COUNTS[name]
    spec = get_spec(name)
    assert spec.held
    # the files are the ones MANIFEST.md lists (same sha256), recorded as provenance
    for rel, digest in spec.checksums:
        if rel in ds.meta["sha256"]:
            assert ds.meta["sha256"][rel] == digest
    assert ds.meta["spec"] == name and ds.meta["files"]
    assert ds.meta["remove_seen"] is (name != "Yelp2019_550_S3Rec")


def _read_lines_reference(path: Path) -> dict[int, list[int]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        rows = [list(map(int, line.split())) for line in fh if line.strip()]
    return {row[0]: row[1:] for row in rows}


@pytest.mark.parametrize("name", S3REC_LAYOUT)
def test_s3rec_sets_load_as_is(shared_root: Path, name: str) -> None:
    """These files are already 5-core and re-indexed: the recipe must change nothing."""
    ds = load_dataset(name)
    raw = _read_lines_reference(shared_root / get_spec(name).path)
    assert ds.meta["kcore_removed"] == 0
    assert ds.meta["raw_interactions"] == ds.num_interactions
    assert ds.original_user_ids == [str(u) for u in raw]
    assert ds.original_item_ids[1:] == [str(i) for i in range(1, ds.num_items + 1)]
    assert as_lists(ds.sequences) == list(raw.values())


def test_repeat_interactions_flag(shared_root: Path) -> None:
    yelp = load_dataset("Yelp2019_550_S3Rec")
    assert yelp.has_repeats and get_spec("Yelp2019_550_S3Rec").repeat_interactions
    assert not yelp.meta["remove_seen"]
    for name in MANIFEST_COUNTS:
        if name != "Yelp2019_550_S3Rec":
            assert get_spec(name).remove_seen and not load_dataset(name).has_repeats


def test_movielens_genres_titles_and_order(shared_root: Path) -> None:
    ml = load_dataset("MovieLens1M_550_LOU")
    toy = ml.original_item_ids.index("1")
    assert ml.item_titles[toy] == "Toy Story (1995)"
    assert ml.item_attributes[toy] == ["Animation", "Children's", "Comedy"]
    assert ml.item_attributes[0] == [] and len(ml.item_attributes) == ml.num_items + 1
    genres = Counter(g for labels in ml.item_attributes[1:] for g in labels)
    assert len(genres) == 18
    # MANIFEST: user 1 has 53 ratings, 3186 first and 48 last; user ids sorted
    user1 = [int(ml.original_item_ids[i]) for i in ml.sequences[0]]
    assert ml.original_user_ids[:2] == ["1", "2"]
    assert len(user1) == 53 and user1[0] == 3186 and user1[-1] == 48
    # item ids ascend with the MovieID
    movie_ids = [int(x) for x in ml.original_item_ids[1:]]
    assert movie_ids == sorted(movie_ids)


def test_movielens_ratings_reader_agrees_with_sequences(
    shared_root: Path, tmp_path: Path, add_spec
) -> None:
    """Rebuild a ratings.dat from the real sequences (timestamps = position, lines shuffled):
    the GroupLens route must give exactly the data set of the sequence route."""
    ml = load_dataset("MovieLens1M_550_LOU")
    raw = _read_lines_reference(shared_root / "ml-1m/ml-1m_sequences.txt.gz")
    lines = [f"{u}::{m}::3::{978300000 + t}\n" for u, ms in raw.items() for t, m in enumerate(ms)]
    np.random.default_rng(0).shuffle(lines)
    write(tmp_path / "ml-1m/ratings.dat", "".join(lines))
    (tmp_path / "ml-1m/movies.dat").write_bytes((shared_root / "ml-1m/movies.dat").read_bytes())
    add_spec(dataclasses.replace(get_spec("MovieLens1M_550_LOU"), name="ML_ratings"))
    again = load_dataset("ML_ratings", root=tmp_path)
    assert again.meta["format"] == "movielens_ratings" and ml.meta["format"] == "s3rec_lines"
    assert again.original_item_ids == ml.original_item_ids
    assert again.original_user_ids == ml.original_user_ids
    assert as_lists(again.sequences) == as_lists(ml.sequences)
    assert again.item_attributes == ml.item_attributes and again.item_titles == ml.item_titles


def test_amazon_attributes_map_to_items(shared_root: Path) -> None:
    beauty = load_dataset("Amazon2014Beauty_550_LOU")
    table = json.loads((shared_root / "s3rec/Beauty_item2attributes.json").read_text())
    assert beauty.item_attributes[4] == [str(a) for a in table["4"]]
    assert all(beauty.item_attributes[1:])  # every item has categories/brand
    lastfm = load_dataset("LastFM")  # tag lists repeat tags: labels are de-duplicated
    assert all(len(set(a)) == len(a) for a in lastfm.item_attributes)
    assert load_dataset("Amazon2014Tools_550_LOU").item_attributes is None


def test_load_is_cached_per_root(shared_root: Path) -> None:
    assert load_dataset("LastFM") is load_dataset("LastFM", root=shared_root)


def test_dataset_table(shared_root: Path) -> None:
    table = dataset_table()
    assert list(table["name"]) == [s.name for s in list_datasets()]
    loaded = table.set_index("name")
    for name, (users, items, interactions) in MANIFEST_COUNTS.items():
        row = loaded.loc[name]
        assert row["present"] and row["status"] == "loaded"
        assert (row["users"], row["items"], row["interactions"]) == (users, items, interactions)
        assert row["density"] == pytest.approx(interactions / (users * items))
    for name in NOT_HELD:
        assert loaded.loc[name, "status"] == "not available offline"
        assert loaded.loc[name, "path"].startswith(str(shared_root))
    text = format_dataset_table()
    assert "22,363" in text and "999,611" in text
    assert re.search(r"Steam_550_LOU .*not available offline: .*steam\.csv", text)


# ----- registry --------------------------------------------------------------------------------
def test_registry_covers_spec_names() -> None:
    names = [s.name for s in list_datasets()]
    assert len(names) == len(set(names))
    assert set(MANIFEST_COUNTS) | set(NOT_HELD) <= set(names)
    for name in NOT_HELD:
        spec = get_spec(name)
        assert not spec.held and spec.obtain and spec.format in loaders.FORMATS
    assert get_spec("Amazon2014Beauty_554_LOU").min_rating == 4
    assert (get_spec("Amazon2014Beauty_1000_LOU").user_core,
            get_spec("Amazon2014Beauty_1000_LOU").item_core) == (10, 0)  # fmt: skip
    ml = get_spec("MovieLens1M_550_LOU")
    assert ml.url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert [s.format for s in ml.sources] == ["movielens_ratings", "s3rec_lines"]


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(UnknownDatasetError) as info:
        load_dataset("Amazon2014Beauty_550")
    message = str(info.value)
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert "Did you mean Amazon2014Beauty_550_LOU" in message
    for spec in list_datasets():
        assert spec.name in message


def test_missing_file_says_where_and_how(tmp_path: Path, isolated_cache: Path) -> None:
    with pytest.raises(DatasetNotAvailableError) as info:
        load_dataset("Steam_550_LOU", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "steam/steam.csv") in message
    assert str(isolated_cache / "data/steam/steam.csv") in message  # the cache is looked at too
    assert "SEQNB_DATA" in message and "root=" in message
    assert "not available offline" in message and "user,item,timestamp" in message
    with pytest.raises(DatasetNotAvailableError) as info:
        load_dataset("Amazon2014Beauty_550_LOU", root=tmp_path)
    assert "s3rec/Beauty.txt.gz" in str(info.value) and "MANIFEST" in str(info.value)


def test_data_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQNB_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("SEQNB_DATA")
    monkeypatch.setattr(sd, "REPO_ROOT", tmp_path / "a" / "repo")
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "b")
    first, second, third = tmp_path / "a/shared/data", tmp_path / "shared/data", tmp_path / "b/data"
    assert sd.default_roots() == [first, second, third]
    assert data_root() == first  # none exists: the first candidate
    for candidate in (third, second, first):
        candidate.mkdir(parents=True)
        assert data_root() == candidate  # the first existing one wins


# ----- split -----------------------------------------------------------------------------------
def test_leave_one_out_split_by_hand() -> None:
    ds = from_sequences("toy", [["a", "b", "c", "d"], ["b", "c", "e"]])
    # ids by first appearance: a=1 b=2 c=3 d=4 e=5
    assert as_lists(ds.sequences) == [[1, 2, 3, 4], [2, 3, 5]]
    assert as_lists(ds.train_sequences) == [[1, 2], [2]]
    assert ds.valid_targets.tolist() == [3, 3]
    assert ds.test_targets.tolist() == [4, 5]
    assert as_lists(ds.inputs("valid")) == [[1, 2], [2]]
    assert as_lists(ds.inputs("test")) == [[1, 2, 3], [2, 3]]
    assert ds.item_frequency.tolist() == [0, 1, 2, 0, 0, 0]


def test_loaded_split_follows_file_order(tmp_path: Path, add_spec) -> None:
    write(tmp_path / "toy.txt", "7 30 10 20 40\n3 20 30 50\n9 10 20 30\n")
    add_spec(DatasetSpec("Toy", "toy", (RawSource("s3rec_lines", "toy.txt"),), 3, 1))
    ds = load_dataset("Toy", root=tmp_path)
    assert ds.original_user_ids == ["3", "7", "9"]  # users by ascending raw id
    assert ds.original_item_ids == ["", "10", "20", "30", "40", "50"]
    assert as_lists(ds.sequences) == [[2, 3, 5], [3, 1, 2, 4], [1, 2, 3]]
    assert ds.test_targets.tolist() == [5, 4, 3]
    assert ds.valid_targets.tolist() == [3, 2, 2]
    assert as_lists(ds.train_sequences) == [[2], [3, 1], [1]]


# ----- k-core ----------------------------------------------------------------------------------
def test_kcore_needs_more_than_one_pass() -> None:
    # 2-core. Pass 1 drops u3 (1 row); then i2 has 1 row left -> pass 2 drops (u2, i2);
    # then u2 has 1 row -> pass 3 drops (u2, i1). Only u0, u1 x i0, i1 survive.
    users = np.array([0, 0, 1, 1, 2, 2, 3])
    items = np.array([0, 1, 0, 1, 1, 2, 2])
    one_pass = kcore_mask(users, items, 2, 2, max_passes=1)
    assert one_pass.tolist() == [True] * 6 + [False]
    assert kcore_mask(users, items, 2, 2).tolist() == [True] * 4 + [False] * 3
    assert kcore_mask(users, items, 2, 0).tolist() == [True] * 6 + [False]


def _kcore_reference(pairs: list[tuple[int, int]], ku: int, ki: int) -> list[bool]:
    alive = [True] * len(pairs)
    while True:
        uc = Counter(u for (u, _), a in zip(pairs, alive, strict=True) if a)
        ic = Counter(i for (_, i), a in zip(pairs, alive, strict=True) if a)
        new = [a and uc[u] >= ku and ic[i] >= ki for (u, i), a in zip(pairs, alive, strict=True)]
        if new == alive:
            return alive
        alive = new


@pytest.mark.parametrize("seed", range(5))
def test_kcore_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 40, 400)
    items = rng.zipf(1.6, 400) % 60
    for ku, ki in [(3, 3), (5, 2), (2, 6), (4, 0)]:
        expected = _kcore_reference(list(zip(users, items, strict=True)), ku, ki)
        assert kcore_mask(users, items, ku, ki).tolist() == expected


def test_reindex_and_grouping() -> None:
    codes, labels = reindex(np.array([10, 9, 10, 100]), start=1)
    assert codes.tolist() == [2, 1, 2, 3] and labels.tolist() == [9, 10, 100]
    codes, labels = reindex(np.array(["b", "a", "b"]))
    assert codes.tolist() == [1, 0, 1] and labels.tolist() == ["a", "b"]
    assert reindex(np.array([3, 1, 2]), start=1)[0].tolist() == [3, 1, 2]  # 1..n kept
    groups = group_sequences(np.array([1, 0, 1, 0]), np.array([5, 6, 7, 8]))
    assert as_lists(groups) == [[6, 8], [5, 7]]


# ----- timestamped formats ---------------------------------------------------------------------
def test_generic_csv_orders_by_timestamp(tmp_path: Path, add_spec) -> None:
    text = (
        "u1,b,200\n"
        "u2,x,5\n"
        "u1,a,100\n"
        "u1,c,200\n"  # tie with b: file order kept (b before c)
        "u2,y,3\n"
        "u2,z,9\n"
        "u1,d,50\n"
    )
    frame = loaders.read_interactions_csv(write(tmp_path / "plain.csv", text))
    assert frame.groupby("user")["item"].agg(list).to_dict() == {
        "u1": ["d", "a", "b", "c"],
        "u2": ["y", "x", "z"],
    }
    headed = "rating,timestamp,item,user\n" + "".join(
        f"5,{ts},{item},{user}\n" for user, item, ts in (r.split(",") for r in text.split())
    )
    same = loaders.read_interactions_csv(write(tmp_path / "headed.csv.gz", headed, gz=True))
    assert same[["user", "item", "timestamp"]].equals(frame)
    dates = (
        "user,item,timestamp\n1,10,2018-03-02 10:00\n1,11,2018-03-01T23:59:59\n1,12,2019-01-01\n"
    )
    frame = loaders.read_interactions_csv(write(tmp_path / "dates.csv", dates))
    assert frame["item"].tolist() == [11, 10, 12]
    add_spec(DatasetSpec("MyCSV", "mine", (RawSource("interactions_csv", "plain.csv"),), 3, 0))
    ds = load_dataset("MyCSV", root=tmp_path)
    assert ds.original_user_ids == ["u1", "u2"]
    assert [[ds.original_item_ids[i] for i in s] for s in ds.sequences] == [
        ["d", "a", "b", "c"],
        ["y", "x", "z"],
    ]


def test_amazon_ratings_threshold_and_kcore(tmp_path: Path, add_spec) -> None:
    rows = [("A", "i1", 5, 1), ("A", "i2", 4, 2), ("A", "i3", 5, 3), ("A", "i4", 2, 4),
            ("B", "i3", 4, 9), ("B", "i1", 5, 7), ("B", "i2", 5, 8),
            ("C", "i1", 1, 1), ("C", "i2", 5, 1), ("C", "i3", 5, 1)]  # fmt: skip
    write(tmp_path / "r.csv", "".join(f"{u},{i},{r}.0,{t}\n" for u, i, r, t in rows))
    add_spec(DatasetSpec("Amz", "amz", (RawSource("amazon_ratings", "r.csv"),), 3, 2, 4))
    ds = load_dataset("Amz", root=tmp_path)
    # ratings >= 4: A i1 i2 i3, B i1 i2 i3, C i2 i3 -> C has 2 < 3 and goes
    assert ds.original_user_ids == ["A", "B"]
    assert [[ds.original_item_ids[i] for i in s] for s in ds.sequences] == [
        ["i1", "i2", "i3"],
        ["i1", "i2", "i3"],
    ]
    assert ds.meta["raw_interactions"] == 10 and ds.meta["rating_removed"] == 2
    assert ds.meta["kcore_removed"] == 2


def test_retailrocket_keeps_transactions(tmp_path: Path) -> None:
    text = (
        "timestamp,visitorid,event,itemid,transactionid\n"
        "30,1,view,5,\n20,1,transaction,6,100\n10,1,transaction,7,101\n"
        "5,2,addtocart,7,\n40,2,transaction,8,102\n"
    )
    frame = loaders.read_retailrocket_events(write(tmp_path / "events.csv", text))
    assert frame.to_dict("list") == {
        "user": [1, 1, 2],
        "item": [7, 6, 8],
        "timestamp": [10, 20, 40],
    }


def test_movielens_ratings_preferred_and_ties_stable(tmp_path: Path, add_spec) -> None:
    ratings = "".join(
        f"{u}::{m}::{r}::{t}\n"
        for u, m, r, t in [(2, 20, 5, 7), (1, 30, 3, 5), (1, 10, 4, 5), (1, 20, 1, 1),
                           (2, 10, 2, 7), (2, 30, 5, 6)]
    )  # fmt: skip
    write(tmp_path / "ml-1m/ratings.dat", ratings)
    write(tmp_path / "ml-1m/ml-1m_sequences.txt.gz", "1 99 98 97\n", gz=True)
    movies = "10::Ten (1990)::Drama\n20::Twenty (1991)::Comedy|Drama\n30::Thirty::Horror\n"
    (tmp_path / "ml-1m/movies.dat").write_bytes(movies.encode("iso-8859-1"))
    base = get_spec("MovieLens1M_550_LOU")
    add_spec(DatasetSpec("ML", "ml", base.sources, 3, 1))
    ds = load_dataset("ML", root=tmp_path)
    assert ds.meta["format"] == "movielens_ratings"
    assert [[ds.original_item_ids[i] for i in s] for s in ds.sequences] == [
        ["20", "30", "10"],  # t=1, then the tie at t=5 in file order
        ["30", "20", "10"],  # t=6, then the tie at t=7 in file order
    ]
    assert ds.item_titles[1:] == ["Ten (1990)", "Twenty (1991)", "Thirty"]
    assert ds.item_attributes[2] == ["Comedy", "Drama"]


def test_manifest_checksum_mismatch_warns(tmp_path: Path, add_spec) -> None:
    write(tmp_path / "x.txt", "1 1 2 3\n")
    add_spec(DatasetSpec("X", "x", (RawSource("s3rec_lines", "x.txt"),), 3, 1,
                         checksums=(("x.txt", "0" * 64),)))  # fmt: skip
    with pytest.warns(UserWarning, match="differs from the one in the shared data MANIFEST"):
        load_dataset("X", root=tmp_path)


# ----- bad input -------------------------------------------------------------------------------
def test_empty_files(tmp_path: Path) -> None:
    for name, data in [("e.txt", b""), ("w.txt", b" \n\n"), ("e.txt.gz", gzip.compress(b""))]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataFormatError, match="empty") as info:
            loaders.read_user_lines(tmp_path / name)
        assert info.value.path == tmp_path / name and str(tmp_path / name) in str(info.value)
    with pytest.raises(DataFormatError, match="empty"):
        loaders.read_interactions_csv(write(tmp_path / "e.csv", ""))
    with pytest.raises(DataFormatError, match="no data rows"):
        loaders.read_retailrocket_events(
            write(tmp_path / "h.csv", "timestamp,visitorid,event,itemid,transactionid\n")
        )


def test_truncated_gzip_names_file_and_line(tmp_path: Path) -> None:
    text = "".join(f"{u} " + " ".join(str(i) for i in range(u, u + 30)) + "\n"
                   for u in range(1, 2001))  # fmt: skip
    data = gzip.compress(text.encode())
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="truncated") as info:
        loaders.read_user_lines(path)
    assert str(path) in str(info.value)
    assert info.value.line is not None and 1 < info.value.line < 2000
    assert f"line {info.value.line}" in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "pattern"),
    [
        ("1 2 3\n2 4 x5\n3 1 2\n", 2, "'x5' is not an integer"),
        ("1 2 3\n\n2 4 5.5\n", 3, "'5.5' is not an integer"),
        ("1 2 3\n2\n3 4 5\n", 2, "at least one item"),
        ("1 2 3\n2 3 4\n1 5 6\n", 3, "user 1 already appeared on line 1"),
    ],
)
def test_malformed_user_lines(tmp_path: Path, text: str, line: int, pattern: str) -> None:
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(DataFormatError, match=pattern) as info:
        loaders.read_user_lines(path)
    assert info.value.line == line and f"bad.txt, line {line}:" in str(info.value)


@pytest.mark.parametrize(
    ("reader", "text", "line", "pattern"),
    [
        (loaders.read_interactions_csv, "u,i,1\nu,i\nu,j,3\n", 2, "expected 3 fields"),
        (loaders.read_interactions_csv, "u,i,1\nu,j,2\nu,k,soon\n", 3, "timestamp 'soon'"),
        (loaders.read_interactions_csv, "user,item,timestamp\nu,i,1\n,j,2\n", 3, "user ''"),
        (loaders.read_amazon_ratings, "A,x,5.0,1\nA,y,five,2\n", 2, "rating 'five'"),
        (loaders.read_amazon_ratings, "A,x,5.0,1,extra\n", 1, "expected 4 fields"),
        (loaders.read_movielens_ratings, "1::2::5::9\n1::3::4\n", 2, "expected 4 fields"),
        (loaders.read_movielens_ratings, "1::2::5::9\n1::a::4::7\n", 2, "item 'a'"),
        (loaders.read_movielens_movies, "1::Toy Story (1995)::Comedy\n2::Jumanji\n", 2,
         "expected 3 fields"),
        (loaders.read_item2attributes, '{"1": [1, 2],\n "2": [3,, 4]}', 2, "invalid JSON"),
        (loaders.read_retailrocket_events, "ts,visitor,event\n1,2,view\n", 1, "header"),
    ],
)  # fmt: skip
def test_malformed_tables(tmp_path: Path, reader, text: str, line: int, pattern: str) -> None:
    path = write(tmp_path / "bad.dat", text)
    with pytest.raises(DataFormatError, match=pattern) as info:
        reader(path)
    assert info.value.line == line and str(path) in str(info.value)


def test_readers_are_consistent_on_real_lines(shared_root: Path) -> None:
    """The vectorised line reader agrees with a plain Python reading of a real file."""
    path = shared_root / "s3rec/LastFM.txt"
    frame = loaders.read_user_lines(path)
    raw = _read_lines_reference(path)
    assert frame["user"].tolist() == [u for u, items in raw.items() for _ in items]
    assert frame["item"].tolist() == list(itertools.chain.from_iterable(raw.values()))
