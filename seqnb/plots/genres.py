"""Chapter 5 charts: the genre strip, the per-user gap, and the cross-data-set comparison.

Every builder takes small, already aggregated frames (from :mod:`seqnb.genres`) and returns
an altair chart; the style comes from :mod:`seqnb.plots`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from seqnb.plots import (
    PAGE_WIDTH,
    PALETTE,
    SETTING_COLORS,
    SMALL_WIDTH,
    WIDTH,
    dataset_scale,
    short_names,
)

# 18 MovieLens genres need more hues than the book palette: Tableau-20, in a fixed order.
GENRE_SCHEME = "tableau20"
# the genre strip's room for its row labels ("user 5135 (77 items)"), axis and padding
STRIP_LABELS = 180


def live_caption(chart: Any, title: str, source: str | None = None) -> Any:
    """Title ``chart`` with ``source`` (where its numbers come from) as the wrapped subtitle.

    For charts computed live from the data, where :func:`seqnb.plots.with_caption`'s
    "Runs shown:" prefix would be wrong; pass e.g. "Computed live … from <data root>"."""
    if source is None:
        return chart.properties(title=alt.TitleParams(title))
    return chart.properties(title=alt.TitleParams(
        title, subtitle=textwrap.wrap(source, 110)))


def genre_order(strip: pd.DataFrame, item_attributes: Sequence[Sequence[str]] | None = None
                ) -> list[str]:
    """Primary genres ordered by how often they occur (in the catalogue when
    ``item_attributes`` is given, else in ``strip``), so colours are stable across users."""
    if item_attributes is not None:
        firsts = pd.Series([a[0] for a in item_attributes[1:] if a])
    else:
        firsts = strip["primary"]
    order = list(firsts.value_counts().index)
    return order + sorted(set(strip["primary"]) - set(order))


def genre_strip_chart(
    strip: pd.DataFrame,
    genres: Sequence[str] | None = None,
    provenance: str | None = None,
    step: int = 4,
) -> alt.Chart:
    """One row per user, one rectangle per movie in time order, coloured by primary genre.

    ``strip``: :func:`seqnb.genres.genre_strip` output. The tooltip shows the position, the
    title, all genres, and whether the movie shares a genre with the previous one. A thin
    dark tick under a rectangle marks "shares a genre with the previous movie", so runs of
    one genre family read as unbroken underlines.
    """
    data = strip[["label", "position", "title", "genres", "primary"]].copy()
    data["shares"] = np.where(strip["shares_previous"], "yes", "no")
    order = list(genres) if genres is not None else genre_order(strip)
    positions = int(data["position"].max()) if len(data) else 1
    y = alt.Y("label:N", title=None, sort=list(dict.fromkeys(data["label"])),
              axis=alt.Axis(labelLimit=STRIP_LABELS - 40))
    x = alt.X("start:Q", title="position in the user's sequence (time order)",
              scale=alt.Scale(domain=[0, positions], nice=False))
    tooltip = [
        alt.Tooltip("label:N", title="user"), alt.Tooltip("position:Q"),
        alt.Tooltip("title:N"), alt.Tooltip("genres:N", title="all genres"),
        alt.Tooltip("primary:N", title="colour (first-listed genre)"),
        alt.Tooltip("shares:N", title="shares a genre with previous"),
    ]
    base = alt.Chart(data).transform_calculate(start="datum.position - 1",
                                               mid="datum.position - 0.5")
    rects = base.mark_rect(stroke="white", strokeWidth=0.3).encode(
        x=x, x2="position:Q", y=y,
        color=alt.Color("primary:N", title="first-listed genre",
                        scale=alt.Scale(domain=order, scheme=GENRE_SCHEME),
                        legend=alt.Legend(columns=5, symbolType="square", orient="bottom")),
        tooltip=tooltip,
    )
    runs = base.transform_filter(alt.datum.shares == "yes").mark_tick(
        color="#222", thickness=1.5, size=step + 1, orient="horizontal", yOffset=9,
    ).encode(x=alt.X("mid:Q"), y=y)
    # one cell per position, as wide as the page column leaves beside the row labels
    width = max(WIDTH, min(PAGE_WIDTH - STRIP_LABELS, positions * step))
    chart = alt.layer(rects, runs).properties(width=width, height=alt.Step(26))
    return live_caption(chart, "Genre strips: one movie per cell, in time order", provenance)


def per_user_gap_chart(per_user: pd.DataFrame, overall_gap: float | None = None,
                       bins: int = 40, provenance: str | None = None) -> alt.Chart:
    """Histogram of the per-user gap (observed share minus mean permuted share).

    ``per_user``: :meth:`seqnb.genres.ConsecutiveShare.per_user`. Binned here, so the chart
    carries ``bins`` rows whatever the number of users. A rule marks 0 (no order effect) and,
    when given, the pooled gap.
    """
    gaps = per_user["gap"].dropna().to_numpy()
    lo, hi = (float(gaps.min()), float(gaps.max())) if len(gaps) else (-1.0, 1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(gaps, bins=edges)
    data = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "users": counts,
                         "share": counts / max(len(gaps), 1)})
    bars = alt.Chart(data).mark_rect(color=PALETTE[0], opacity=0.85).encode(
        x=alt.X("from:Q", title="per-user gap: observed − permuted share",
                axis=alt.Axis(format="+.0%")),
        x2="to:Q",
        y=alt.Y("users:Q", title="users"),
        tooltip=[alt.Tooltip("from:Q", format="+.1%", title="gap from"),
                 alt.Tooltip("to:Q", format="+.1%", title="gap to"),
                 alt.Tooltip("users:Q"), alt.Tooltip("share:Q", format=".1%",
                                                     title="share of users")],
    )
    marks = [{"x": 0.0, "what": "no order effect"}]
    if overall_gap is not None:
        marks.append({"x": float(overall_gap), "what": "pooled gap"})
    rules = alt.Chart(pd.DataFrame(marks)).mark_rule(strokeDash=[4, 3], strokeWidth=1.5).encode(
        x="x:Q",
        color=alt.Color("what:N", title=None,
                        scale=alt.Scale(domain=[m["what"] for m in marks],
                                        range=["#666666", PALETTE[3]][:len(marks)])),
        tooltip=[alt.Tooltip("what:N"), alt.Tooltip("x:Q", format="+.2%", title="gap")],
    )
    chart = alt.layer(bars, rules).properties(width=WIDTH, height=200)
    return live_caption(chart, "Per-user gap: consecutive movies sharing a genre, observed "
                               "− shuffled", provenance)


def comparison_chart(summary: pd.DataFrame, drops: pd.DataFrame | None = None,
                     provenance: str | None = None) -> Any:
    """One row per data set: observed vs permuted share, the gap with its interval, and the
    shuffle chapter's NDCG@10 change (where stored).

    ``summary``: :func:`seqnb.genres.dataset_summary` table. ``drops``:
    :func:`seqnb.genres.shuffle_drops` (may be empty: the third panel then says so).
    """
    data = summary.copy()
    names_of = short_names([*data["dataset"], *(() if drops is None else drops["dataset"])])
    data["name"] = data["dataset"].map(names_of)
    order = list(data["name"])
    y = alt.Y("name:N", title=None, sort=order, scale=alt.Scale(domain=order))
    # the panels share their rows: only the first names them (the chart fits the page)
    y_unlabelled = y.axis(labels=False, ticks=False)  # a copy of y without its labels
    color = alt.Color("dataset:N", scale=dataset_scale(data["dataset"]), legend=None)
    info = [alt.Tooltip("dataset:N"),
            alt.Tooltip("observed share:Q", format=".1%"),
            alt.Tooltip("permuted share:Q", format=".1%"),
            alt.Tooltip("gap:Q", format="+.2%"),
            alt.Tooltip("gap low:Q", format="+.2%", title="gap CI low"),
            alt.Tooltip("gap high:Q", format="+.2%", title="gap CI high"),
            alt.Tooltip("ratio:Q", format=".3f", title="observed / permuted"),
            alt.Tooltip("p-value:Q", format=".3g", title="permutation p"),
            alt.Tooltip("users:Q", format=","), alt.Tooltip("attributes:Q")]

    base = alt.Chart(data).encode(y=y)
    shares = alt.layer(
        base.mark_rule(color="#999", strokeWidth=2).encode(
            x=alt.X("permuted share:Q", title=["consecutive pairs", "sharing an attribute"],
                    axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            x2="observed share:Q"),
        base.mark_point(shape="circle", filled=False, size=70, color="#555").encode(
            x="permuted share:Q", tooltip=info),
        base.mark_point(filled=True, size=90).encode(
            x="observed share:Q", color=color, tooltip=info),
    ).properties(width=SMALL_WIDTH, height=alt.Step(26),
                 title=alt.TitleParams(["Observed (filled)", "vs permuted (open)"], fontSize=12))

    gap = alt.layer(
        base.encode(y=y_unlabelled).mark_rule(strokeWidth=2, color="#333").encode(
            x=alt.X("gap low:Q", title=["gap (observed − permuted),", "95% CI"],
                    axis=alt.Axis(format="+.0%")),
            x2="gap high:Q"),
        base.encode(y=y_unlabelled).mark_point(filled=True, size=80).encode(
            x="gap:Q", color=color, tooltip=info),
        alt.Chart(pd.DataFrame({"v": [0.0]})).mark_rule(color="#bbb").encode(x="v:Q"),
    ).properties(width=140, height=alt.Step(26),
                 title=alt.TitleParams("Gap with its interval", fontSize=12))

    panels = [shares, gap]
    if drops is not None and not drops.empty:
        d = drops.copy()
        d["name"] = d["dataset"].map(names_of)
        d["protocol"] = "shuffled (" + d["protocol"] + ")"
        protocols = [p for p in ("shuffled (window)", "shuffled (history)")
                     if p in set(d["protocol"])]
        names = order + [n for n in dict.fromkeys(d["name"]) if n not in order]
        protocol_scale = alt.Scale(domain=protocols,
                                   range=[SETTING_COLORS[p] for p in protocols])
        drop_tooltip = [alt.Tooltip("dataset:N"), alt.Tooltip("protocol:N"),
                        alt.Tooltip("original:Q", format=".4f", title="NDCG@10 original"),
                        alt.Tooltip("shuffled:Q", format=".4f", title="NDCG@10 shuffled"),
                        alt.Tooltip("relative_change:Q", format="+.1%", title="change"),
                        alt.Tooltip("seeds:Q")]
        panels.append(alt.layer(
            alt.Chart(pd.DataFrame({"v": [0.0]})).mark_rule(color="#bbb").encode(x="v:Q"),
            alt.Chart(d).mark_point(size=80, filled=True, opacity=0.9).encode(
                y=alt.Y("name:N", title=None, sort=names, scale=alt.Scale(domain=names),
                        axis=alt.Axis(labels=False, ticks=False)),
                x=alt.X("relative_change:Q", title=["NDCG@10 change", "when shuffled"],
                        axis=alt.Axis(format="%")),
                color=alt.Color("protocol:N", title="shuffle protocol", scale=protocol_scale,
                                legend=alt.Legend(orient="bottom")),  # keeps it page-wide
                shape=alt.Shape("protocol:N", title="shuffle protocol",
                                scale=alt.Scale(domain=protocols,
                                                range=["circle", "diamond"][:len(protocols)]),
                                legend=alt.Legend(orient="bottom")),
                tooltip=drop_tooltip),
        ).properties(width=140, height=alt.Step(26),
                     title=alt.TitleParams(["Shuffle chapter", "(stored runs)"], fontSize=12)))
    chart = alt.hconcat(*panels, spacing=24).resolve_scale(color="independent", shape="independent", y="shared")
    return live_caption(chart, "Consecutive items sharing an attribute, every data set "
                               "with attributes", provenance)


__all__ = ["GENRE_SCHEME", "comparison_chart", "genre_order", "genre_strip_chart",
           "live_caption", "per_user_gap_chart"]
