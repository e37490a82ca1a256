"""Named data sets and the recipe that builds each one from its raw files.

Names follow FreeRec: ``<Source>_<user-core><item-core><min-rating>_LOU``; ``550`` = users
and items with >= 5 interactions, any rating; ``554`` = the same on ratings >= 4; ``1000``
= users >= 10, no item filter; ``500`` = users >= 5, no item filter; ``10100`` = users and
items >= 10. ``LOU`` = leave-one-out split. File paths are relative to the data root
(see :func:`seqnb.data.data_root`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from .loaders import FORMATS, INTERACTION_READERS

__all__ = [
    "DatasetSpec",
    "RawSource",
    "UnknownDatasetError",
    "get_spec",
    "list_datasets",
    "register_dataset",
]

ATTRIBUTE_FORMATS = ("s3rec_item2attributes", "movielens_movies")
RATED_FORMATS = ("movielens_ratings", "amazon_ratings")


@dataclass(frozen=True)
class RawSource:
    """One way to build a data set: an interactions file and, optionally, item metadata.

    Attributes:
        format: interactions format, a key of :data:`seqnb.data.loaders.FORMATS`.
        path: interactions file, relative to the data root. A ``.gz`` sibling is accepted.
        attributes: optional item-metadata file, relative to the data root.
        attributes_format: ``s3rec_item2attributes`` or ``movielens_movies`` (genres + titles).
    """

    format: str
    path: str
    attributes: str | None = None
    attributes_format: str | None = None

    def __post_init__(self) -> None:
        if self.format not in INTERACTION_READERS:
            raise ValueError(
                f"unknown raw format {self.format!r}; known: {sorted(INTERACTION_READERS)}"
            )
        if (self.attributes is None) != (self.attributes_format is None):
            raise ValueError("give both attributes and attributes_format, or neither")
        if self.attributes_format is not None and self.attributes_format not in ATTRIBUTE_FORMATS:
            raise ValueError(
                f"unknown attributes format {self.attributes_format!r}; "
                f"known: {list(ATTRIBUTE_FORMATS)}"
            )

    @property
    def files(self) -> tuple[str, ...]:
        return (self.path,) if self.attributes is None else (self.path, self.attributes)


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set: where its raw files are and how they become sequences.

    Attributes:
        name: registry name.
        description: one line for tables and docs.
        sources: ways to build it, in order of preference; the first whose interactions
            file exists (under the data root, then the download cache) is used.
        user_core / item_core: iterative k-core thresholds (interactions per user / item;
            0 = no filter for that side).
        min_rating: keep interactions with rating >= this before the k-core filter
            (None = all; only for formats that carry ratings).
        held: whether the shared data folder (``../shared/data``) has the files.
        repeat_interactions: the data has repeated (user, item) interactions, so the
            evaluation must not remove already-seen items (``remove_seen`` is False).
        obtain: how to get the raw file(s), for error messages and docs.
        url: public download of the raw file or archive, if there is one.
        sha256 / md5: checksums of the download, where known for certain (None otherwise).
        checksums: ``(relative path, sha256)`` of the held files as the MANIFEST lists them.
    """

    name: str
    description: str
    sources: tuple[RawSource, ...]
    user_core: int = 5
    item_core: int = 5
    min_rating: float | None = None
    held: bool = False
    repeat_interactions: bool = False
    obtain: str = ""
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    checksums: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError(f"{self.name}: at least one raw source is needed")
        if self.user_core < 3:
            raise ValueError(
                f"{self.name}: user_core must be >= 3 (the leave-one-out split needs a "
                "training, a validation and a test item)"
            )
        if self.min_rating is not None and not all(s.format in RATED_FORMATS for s in self.sources):
            raise ValueError(f"{self.name}: min_rating needs a format with ratings")

    # ----- the primary (first) source -------------------------------------------------------
    @property
    def format(self) -> str:
        """Raw format of the preferred source."""
        return self.sources[0].format

    @property
    def path(self) -> str:
        """Interactions file of the preferred source (relative to the data root)."""
        return self.sources[0].path

    @property
    def attribute_file(self) -> str | None:
        return self.sources[0].attributes

    @property
    def files(self) -> tuple[str, ...]:
        """Every file any source may read, relative to the data root."""
        return tuple(dict.fromkeys(f for s in self.sources for f in s.files))

    @property
    def remove_seen(self) -> bool:
        """Default for evaluation: remove already-seen items unless the data repeats."""
        return not self.repeat_interactions

    def format_description(self) -> str:
        return FORMATS[self.format]


class UnknownDatasetError(KeyError, ValueError):
    """No data set of that name is registered; the message lists every known name."""

    def __init__(self, name: str, known: list[str]) -> None:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        close += [k for k in known if name.lower() in k.lower() and k not in close]
        hint = f" Did you mean {', '.join(close[:3])}?" if close else ""
        self.name = name
        self.message = f"unknown data set {name!r}.{hint} Known data sets: {', '.join(known)}."
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to the registry (e.g. your own CSV under a name of your choice)."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"data set {spec.name!r} is already registered (pass replace=True)")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> DatasetSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownDatasetError(name, list(_REGISTRY)) from None


def list_datasets() -> list[DatasetSpec]:
    """Every registered data set, in registration order (held ones first)."""
    return list(_REGISTRY.values())


# ----- the registered data sets -------------------------------------------------------------
_S3REC = "https://github.com/RUCAIBox/CIKM2020-S3Rec (folder data/)"
_SHARED = (
    "It is part of the shared data folder (../shared/data, see its MANIFEST.md); "
    "originally from {origin}. Put the file at <data root>/{path}."
)
_AMAZON_2014 = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
_AMAZON_OBTAIN = (
    "Download the Amazon 2014 'ratings only' file {file} (McAuley et al., "
    "https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html; {url}) and put it at "
    "<data root>/{path} (plain or .gz). Layout: user,item,rating,timestamp without header."
)
_CSV_OBTAIN = (
    "Convert the raw {what} to a CSV with columns user,item,timestamp (header optional; "
    "timestamp in seconds or as a date/time) and put it at <data root>/{path} (plain or "
    ".gz). {extra}"
)


def _s3rec(
    name: str, stem: str, description: str, gz: bool, repeats: bool = False, **checks: str
) -> DatasetSpec:
    path = f"s3rec/{stem}.txt" + (".gz" if gz else "")
    attributes = f"s3rec/{stem}_item2attributes.json"
    return DatasetSpec(
        name=name,
        description=description,
        sources=(RawSource("s3rec_lines", path, attributes, "s3rec_item2attributes"),),
        held=True,
        repeat_interactions=repeats,
        obtain=_SHARED.format(origin=_S3REC, path=path),
        checksums=((path, checks["data"]), (attributes, checks["attributes"])),
    )


def _amazon(
    name: str,
    file: str,
    description: str,
    user_core: int = 5,
    item_core: int = 5,
    min_rating: float | None = None,
) -> DatasetSpec:
    path = f"amazon2014/{file}"
    url = _AMAZON_2014 + file
    return DatasetSpec(
        name=name,
        description=description,
        sources=(RawSource("amazon_ratings", path),),
        obtain=_AMAZON_OBTAIN.format(file=file, url=url, path=path),
        url=url,
        user_core=user_core,
        item_core=item_core,
        min_rating=min_rating,
    )


for _spec in (
    _s3rec(
        "Amazon2014Beauty_550_LOU",
        "Beauty",
        "Amazon 2014 Beauty, 5-core (S3Rec preprocessing), categories/brand attributes",
        gz=True,
        data="42279f722e834b737ba8ce0db247884ea80a1f9d100fe563663351867af46189",
        attributes="129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4",
    ),
    _s3rec(
        "Amazon2014Toys_550_LOU",
        "Toys_and_Games",
        "Amazon 2014 Toys and Games, 5-core (S3Rec preprocessing), categories/brand",
        gz=False,
        data="176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
        attributes="d371acd25101eedac04afc727626464b7acec770c4eda708705d51eb76eb1ad0",
    ),
    _s3rec(
        "Amazon2014Sports_550_LOU",
        "Sports_and_Outdoors",
        "Amazon 2014 Sports and Outdoors, 5-core (S3Rec preprocessing), categories/brand",
        gz=True,
        data="ca3b69834937279cbad279841cb855b579546c9f679e51bf2f8f4cdef5cb7b73",
        attributes="7fb10733ac4f1811384a52144cdefa7fcc7536fa80a7232c5da9bd789155c34b",
    ),
    DatasetSpec(
        name="Amazon2014Tools_550_LOU",
        description="Amazon 2014 Tools and Home Improvement, 5-core (S3Rec layout), no attributes",
        sources=(RawSource("s3rec_lines", "amazon-tools/Tools_and_Home_Improvement.txt"),),
        held=True,
        obtain=_SHARED.format(
            origin="https://github.com/zfan20/GraphDA (data/Tools_and_Home_Improvement.txt)",
            path="amazon-tools/Tools_and_Home_Improvement.txt",
        ),
        checksums=(
            (
                "amazon-tools/Tools_and_Home_Improvement.txt",
                "da9823825eb73e2093e85946a935e5f4818420a89b07b63e04414ce720056f9c",
            ),
        ),
    ),
    _s3rec(
        "Yelp2019_550_S3Rec",
        "Yelp",
        "Yelp (2019-era subset, S3Rec preprocessing), 5-core, business categories; "
        "has repeat interactions",
        gz=True,
        repeats=True,
        data="335de98b1a76fc4277cf8b07e70a5b927751cc728fe55f5ef3ce32344df194a0",
        attributes="f25acd5e1e680e0b22fd4e3f4fb6be4b2a7461e9222610616e3e1ee6702dd58d",
    ),
    _s3rec(
        "LastFM",
        "LastFM",
        "Last.fm HetRec 2011 artists (S3Rec preprocessing), 5-core, tags",
        gz=False,
        data="9ded486adb5b0fe9dc761950afa0a9a05e93ff018992e0c52bf11afec529f802",
        attributes="a4ccd678dc9ff6d43fe5073f491db5c9b02eb98dfa4f8c0382913a784be217ef",
    ),
    DatasetSpec(
        name="MovieLens1M_550_LOU",
        description="MovieLens-1M, 5-core, chronological; genres and titles from movies.dat",
        sources=(
            RawSource(
                "movielens_ratings", "ml-1m/ratings.dat", "ml-1m/movies.dat", "movielens_movies"
            ),
            RawSource(
                "s3rec_lines",
                "ml-1m/ml-1m_sequences.txt.gz",
                "ml-1m/movies.dat",
                "movielens_movies",
            ),
        ),
        held=True,
        obtain=(
            "The shared data folder (../shared/data, see its MANIFEST.md) holds "
            "ml-1m/ml-1m_sequences.txt.gz (the chronological per-user sequences of the "
            "original ratings.dat) and ml-1m/movies.dat. Alternatively download the GroupLens "
            "archive https://files.grouplens.org/datasets/movielens/ml-1m.zip and unpack it so "
            "that <data root>/ml-1m/ratings.dat and ml-1m/movies.dat exist, or let "
            "load_dataset(..., download=True) fetch it into the cache."
        ),
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        # Pinned by several independent users of the archive (e.g. TensorFlow's on-device
        # recommendation example verifies it with keras get_file); MD5 = GroupLens' own.
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        md5="c4d9eecfca2ab87c1945afe126590906",
        checksums=(
            (
                "ml-1m/ml-1m_sequences.txt.gz",
                "e8522b52548343f1e6ed60384acdca0693995d2ae6a007b5d2a6fce4d598236a",
            ),
            (
                "ml-1m/movies.dat",
                "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
            ),
        ),
    ),
    # ----- registered, not held ----------------------------------------------------------
    _amazon(
        "Amazon2014Beauty_554_LOU",
        "ratings_Beauty.csv",
        "Amazon 2014 Beauty, ratings >= 4, 5-core",
        min_rating=4,
    ),
    _amazon(
        "Amazon2014Beauty_1000_LOU",
        "ratings_Beauty.csv",
        "Amazon 2014 Beauty, users >= 10 interactions, no item filter",
        user_core=10,
        item_core=0,
    ),
    _amazon(
        "Amazon2014Tools_554_LOU",
        "ratings_Tools_and_Home_Improvement.csv",
        "Amazon 2014 Tools and Home Improvement, ratings >= 4, 5-core",
        min_rating=4,
    ),
    _amazon(
        "Amazon2014Toys_554_LOU",
        "ratings_Toys_and_Games.csv",
        "Amazon 2014 Toys and Games, ratings >= 4, 5-core",
        min_rating=4,
    ),
    DatasetSpec(
        name="RetailrocketTransaction_500_LOU",
        description="Retailrocket e-commerce events, transactions only, users >= 5",
        sources=(RawSource("retailrocket_events", "retailrocket/events.csv"),),
        user_core=5,
        item_core=0,
        obtain=(
            "Download events.csv of the Retailrocket recommender system dataset "
            "(https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset, needs a Kaggle "
            "login) and put it at <data root>/retailrocket/events.csv (plain or .gz). "
            "Rows with event == 'transaction' are kept."
        ),
    ),
    DatasetSpec(
        name="Yelp2018_10100_LOU",
        description="Yelp 2018 reviews, users and items >= 10",
        sources=(RawSource("interactions_csv", "yelp2018/yelp2018.csv"),),
        user_core=10,
        item_core=10,
        obtain=_CSV_OBTAIN.format(
            what="Yelp Dataset Challenge 2018 reviews (review.json: user_id, business_id, date)",
            path="yelp2018/yelp2018.csv",
            extra="user = user_id, item = business_id, timestamp = date.",
        ),
    ),
    DatasetSpec(
        name="Steam_550_LOU",
        description="Steam game reviews, 5-core",
        sources=(RawSource("interactions_csv", "steam/steam.csv"),),
        obtain=_CSV_OBTAIN.format(
            what="Steam reviews of Kang & McAuley (https://cseweb.ucsd.edu/~jmcauley/"
            "datasets.html#steam_data)",
            path="steam/steam.csv",
            extra="user = username, item = product_id, timestamp = date.",
        ),
    ),
    DatasetSpec(
        name="Tmall2016Buy_550_LOU",
        description="Tmall (IJCAI-16 contest) purchase log, 5-core",
        sources=(RawSource("interactions_csv", "tmall/tmall_buy.csv"),),
        obtain=_CSV_OBTAIN.format(
            what="Tmall online-behaviour log of the IJCAI-16 Brick-and-Mortar Store "
            "Recommendation contest (Tianchi)",
            path="tmall/tmall_buy.csv",
            extra="Keep only the buy actions.",
        ),
    ),
):
    register_dataset(_spec)
del _spec
