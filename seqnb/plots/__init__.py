"""One visual style for the whole book, and the chart builders of Chapters 1–4.

Chapters call :func:`setup` once (it applies the theme and picks the renderer), then build
charts with the functions below and leave the chart as the last expression of a cell::

    from seqnb import plots
    plots.setup()
    plots.maxlen_curves(curves, provenance=runs.provenance)

Every builder takes *aggregated* data (a few rows per data set and setting — never per-user
arrays) and returns an ``altair`` chart object. Colours come from :data:`PALETTE`; a data
set always keeps the same colour (:func:`dataset_color`), in every chapter.

Chapter 5 and 6 builders live in ``seqnb.plots.genres`` and ``seqnb.plots.frequency``; they
import the style from here (``apply_theme``, ``PALETTE``, ``WIDTH``, ``HEIGHT``,
``provenance_caption``, ``metric_table``), so keep those names stable.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from seqnb.analysis import labeller, short_name, short_names
from seqnb.experiments import HELD

THEME_NAME = "seqnb"
FONT = "Helvetica Neue, Helvetica, Arial, sans-serif"
WIDTH = 360
HEIGHT = 220
# The book's text column at a 1280-px browser window (sphinx-book-theme): every chart,
# labels and titles included, must fit in it (the browser test checks each one). Charts
# of several panels set their panel widths below WIDTH for that.
PAGE_WIDTH = 688
SMALL_WIDTH = 180
SMALL_HEIGHT = 140

# Okabe–Ito (colour-blind safe), then two neutral tones; index 0 is "the model of interest".
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # green
    "#D55E00",  # vermillion
    "#CC79A7",  # purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
    "#999999",  # grey
)
# Fixed colours for data sets (held ones first, in the book's order).
DATASET_ORDER: tuple[str, ...] = HELD
# Settings that are compared against each other across the book.
SETTING_COLORS: dict[str, str] = {
    "original": PALETTE[0],
    "shuffled (window)": PALETTE[1],
    "shuffled (history)": PALETTE[3],
}
UNAVAILABLE = "not available offline"
MISSING = "not yet trained"
METRIC_FORMAT = "{:.4f}"
# The renderer chosen by setup(); None until setup() runs.
_RENDERER: str | None = None


# ----- theme -------------------------------------------------------------------------------
def _theme() -> dict[str, Any]:
    return {
        "config": {
            "view": {"continuousWidth": WIDTH, "continuousHeight": HEIGHT, "stroke": None},
            "font": FONT,
            "background": "white",
            "padding": 8,
            "range": {"category": list(PALETTE)},
            "axis": {
                "labelFontSize": 11,
                "titleFontSize": 12,
                "titleFontWeight": "normal",
                "gridColor": "#e6e6e6",
                "domainColor": "#888888",
                "tickColor": "#888888",
            },
            "legend": {"labelFontSize": 11, "titleFontSize": 12, "titleFontWeight": "normal",
                       "orient": "right"},
            "title": {"fontSize": 14, "fontWeight": "normal", "anchor": "start",
                      "subtitleFontSize": 10, "subtitleColor": "#666666"},
            "header": {"labelFontSize": 11, "titleFontSize": 12},
            "line": {"strokeWidth": 2},
            "point": {"size": 40, "filled": True},
            "bar": {"binSpacing": 1},
        }
    }


def apply_theme() -> None:
    """Register and enable the book's altair theme (idempotent)."""
    if hasattr(alt, "theme") and hasattr(alt.theme, "register"):  # altair >= 5.5
        alt.theme.register(THEME_NAME, enable=True)(_theme)
    else:  # pragma: no cover - older altair
        alt.themes.register(THEME_NAME, _theme)
        alt.themes.enable(THEME_NAME)
    alt.data_transformers.disable_max_rows()


def setup(renderer: str | None = None, **renderer_options: Any) -> str:
    """Apply the theme and choose how charts render; the one place that controls output.

    ``renderer=None`` keeps altair's default (``html``-like output that embeds the chart
    spec). The book build may pass another renderer (``"mimetype"``, ``"html"`` with
    offline options, ...) — or set ``SEQNB_ALTAIR_RENDERER``. Returns the active renderer.
    """
    import os
    import warnings

    global _RENDERER
    apply_theme()
    # training progress bars fall back to text in a notebook without ipywidgets; say so once,
    # not in every chapter's output
    warnings.filterwarnings("ignore", message="IProgress not found")
    renderer = renderer or os.environ.get("SEQNB_ALTAIR_RENDERER") or None
    if renderer:
        alt.renderers.enable(renderer, **renderer_options)
    _RENDERER = alt.renderers.active
    return _RENDERER


# Data-set colours: the palette without yellow (too faint for points and thin lines).
DATASET_PALETTE: tuple[str, ...] = tuple(c for c in PALETTE if c != "#F0E442")


def dataset_color(dataset: str) -> str:
    """The fixed colour of a data set (stable across chapters and processes)."""
    if dataset in DATASET_ORDER:
        return DATASET_PALETTE[DATASET_ORDER.index(dataset) % len(DATASET_PALETTE)]
    return DATASET_PALETTE[zlib.crc32(dataset.encode()) % len(DATASET_PALETTE)]


def dataset_legend(datasets: Iterable[str], title: str | None = "data set") -> alt.Legend:
    """A legend that shows each data set's short name (the tooltip keeps the full one)."""
    return alt.Legend(title=title, labelExpr=_short_label_expr(datasets, "datum.value"))


def dataset_scale(datasets: Iterable[str]) -> alt.Scale:
    """A colour scale mapping each data set to its fixed colour."""
    names = list(dict.fromkeys(datasets))
    return alt.Scale(domain=names, range=[dataset_color(d) for d in names])


# ----- captions and tables -----------------------------------------------------------------
def provenance_caption(runs: Any) -> str:
    """'Runs shown: …' — the provenance line under a chart or table.

    Accepts a ``ChapterRuns`` (its ``.provenance``), a list of them, or a plain string.
    """
    if isinstance(runs, str):
        text = runs
    elif isinstance(runs, (list, tuple)):
        text = " | ".join(
            (f"{r.chapter}: " if getattr(r, "chapter", None) else "")
            + provenance_caption(r).removeprefix("Runs shown: ") for r in runs)
    else:
        text = getattr(runs, "provenance", str(runs))
    return f"Runs shown: {text}"


def with_caption(chart: alt.TopLevelMixin, title: str, provenance: Any = None) -> Any:
    """Give ``chart`` a title, with the provenance as its subtitle."""
    subtitle = [] if provenance is None else _wrap(provenance_caption(provenance), 110)
    return chart.properties(title=alt.TitleParams(title, subtitle=subtitle))


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines


def format_mean_std(mean: float, std: float | None = None, n: int | None = None,
                    fmt: str = METRIC_FORMAT) -> str:
    """'0.0123 ± 0.0004' (std over seeds); just the mean when there is one seed."""
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "–"
    if std is None or n is not None and n < 2 or (isinstance(std, float) and np.isnan(std)):
        return fmt.format(mean)
    return f"{fmt.format(mean)} ± {fmt.format(std)}"


def metric_table(
    frame: pd.DataFrame,
    by: Sequence[str],
    metrics: Sequence[str] = ("HR@1", "HR@10", "NDCG@10"),
    fmt: str = METRIC_FORMAT,
    seeds_column: bool = True,
) -> pd.DataFrame:
    """One row per ``by`` group: each metric as 'mean ± std' over the group's runs (seeds).

    ``frame`` has one row per run (``ChapterRuns.frame``). With one run in a group the cell
    shows just the value. A ``seeds`` column counts the runs in each group.
    """
    by = list(by)
    metrics = [m for m in metrics if m in frame.columns]
    if frame.empty:
        return pd.DataFrame(columns=[*by, *metrics, *(["seeds"] if seeds_column else [])])
    grouped = frame.groupby(by, sort=False, dropna=False)
    mean, std, n = grouped[metrics].mean(), grouped[metrics].std(ddof=1), grouped.size()
    out = pd.DataFrame(index=mean.index)
    for m in metrics:
        out[m] = [format_mean_std(mu, sd, k, fmt) for mu, sd, k in
                  zip(mean[m], std[m], n, strict=True)]
    if seeds_column:
        out["seeds"] = n.to_numpy()
    return out.reset_index()


def format_cell(value: Any) -> str:
    """A table cell for reading: counts with thousands separators, other numbers to four
    significant digits (8.876, 0.000734, 165.5; whole ones without decimals), missing ones
    as a dash; text as it is."""
    if value is None or value is pd.NA:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "–"
        if float(value).is_integer() or abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def style_table(table: pd.DataFrame, caption: str | None = None,
                highlight: Sequence[str] = ()) -> Any:
    """A pandas Styler in the book's style (hidden index, caption, optional bold columns);
    cells the caller has not formatted are shown by :func:`format_cell`, and every cell is
    HTML-escaped (a p-value reads ``p < 1e-300``, not a broken tag)."""
    styler = table.style.hide(axis="index").format(format_cell, escape="html")
    if caption:
        styler = styler.set_caption(caption)
    styler = styler.set_table_styles(
        [
            # 12 px, as JupyterLab shows data frames: most tables fit the page column
            {"selector": "", "props": "font-size: 0.75rem;"},
            {"selector": "caption", "props": "caption-side: bottom; font-size: 0.7rem; "
                                              "color: #666; text-align: left;"},
            {"selector": "th", "props": "text-align: left; font-weight: 600;"},
            {"selector": "td", "props": "font-variant-numeric: tabular-nums; "
                                         "padding-right: 4px;"},  # a gap between columns
        ]
    )
    if highlight:
        styler = styler.set_properties(subset=list(highlight), **{"font-weight": "600"})
    return styler


def coverage_table(coverage: pd.DataFrame) -> Any:
    """``analysis.grid_coverage`` as the book shows it (:func:`analysis.coverage_matrix`)."""
    from seqnb.analysis import coverage_matrix

    return style_table(coverage_matrix(coverage),
                       caption="Stored full runs of each chapter's grid (all seeds), per "
                               "data set: stored / runs (computed live from results/)")


def config_table(frame_or_configs: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The exact training configuration of the runs shown, one row per distinct setting.

    Accepts ``ChapterRuns.configs`` (RunConfig objects) or a run frame.
    """
    cols = list(columns or CONFIG_COLUMNS)
    if isinstance(frame_or_configs, pd.DataFrame):
        rows = frame_or_configs
    else:
        rows = pd.DataFrame([c.to_dict() for c in frame_or_configs])
    if rows.empty:
        return pd.DataFrame(columns=[CONFIG_LABELS.get(c, c) for c in cols])
    rows = rows.copy()
    if "lr" in rows and "weight_decay" in rows:
        rows["optimizer"] = [f"Adam lr {lr:g}, wd {wd:g}" for lr, wd in
                             zip(rows["lr"], rows["weight_decay"], strict=True)]
    if "loss" in rows:
        rows["loss"] = rows["loss"].str.upper()
    rows["selection"] = [f"best valid NDCG@10 (every {e})" for e in
                         rows.get("eval_every", pd.Series(5, index=rows.index))]
    if "max_users" in rows and rows["max_users"].notna().any() and "max_users" not in cols:
        cols.append("max_users")  # a subsample (smoke profile): say so
    present = [c for c in cols if c in rows.columns]
    table = rows[present].astype(str)
    if "model" in rows:  # a setting the model has no use for is shown as "–", not a value
        for key in present:
            unused = rows["model"].map(lambda m, k=key: k in UNUSED_BY_MODEL.get(m, ()))
            if key == "num_heads" and "num_blocks" in rows:
                unused |= (rows["model"] == "sasrec") & (rows["num_blocks"] == 0)
            table.loc[unused.to_numpy(), key] = "–"
    table = table.drop_duplicates().reset_index(drop=True)
    return table.rename(columns=CONFIG_LABELS)


_NO_TRANSFORMER = ("num_blocks", "num_heads", "dropout")
UNUSED_BY_MODEL = {
    "zero_block": _NO_TRANSFORMER,
    "stamp": _NO_TRANSFORMER,
    "stamp_only_ht": _NO_TRANSFORMER,
    "stamp_only_mt": _NO_TRANSFORMER,
    "mf_bpr": ("maxlen", *_NO_TRANSFORMER, "layout"),
}


CONFIG_COLUMNS = ("model", "maxlen", "num_blocks", "num_heads", "embedding_dim", "dropout",
                  "epochs", "batch_size", "optimizer", "loss", "layout", "selection")
CONFIG_LABELS = {"num_blocks": "blocks", "num_heads": "heads", "embedding_dim": "dim",
                 "batch_size": "batch", "max_users": "users (subsample)",
                 "rolled_window": "rolled window"}


# ----- chart builders (Chapters 1–4) --------------------------------------------------------
def dataset_selector(datasets: Sequence[str], name: str = "dataset") -> alt.Parameter:
    """A drop-down over the data sets (first one selected), labelled by :func:`short_names`."""
    options = list(dict.fromkeys(datasets))
    labels = list(short_names(options).values())
    return alt.param(
        name=name,
        value=options[0],
        bind=alt.binding_select(options=options, labels=labels, name="data set: "),
    )


def _maxlen_axis(values: Iterable[Any], title: str = "maxlen") -> alt.X:
    """A log2 maxlen axis with a tick at every maxlen shown."""
    ticks = sorted({int(v) for v in values})
    return alt.X("maxlen:Q", title=title, scale=alt.Scale(type="log", base=2),
                 axis=alt.Axis(values=ticks, format="d", grid=False))


def unique_share_chart(shares: pd.DataFrame, provenance: Any = None) -> alt.Chart:
    """Chapter 1(a): share of users whose truncated test input is unique, against maxlen.

    ``shares``: columns ``dataset``, ``maxlen``, ``unique_share`` (0..1).
    """
    base = alt.Chart(shares).encode(
        x=_maxlen_axis(shares["maxlen"], "maxlen (items of history kept)"),
        y=alt.Y("unique_share:Q", title="users with a unique input",
                axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("dataset:N", scale=dataset_scale(shares["dataset"]),
                        legend=dataset_legend(shares["dataset"])),
        tooltip=[alt.Tooltip("dataset:N"), alt.Tooltip("maxlen:Q"),
                 alt.Tooltip("unique_share:Q", format=".1%", title="unique")],
    )
    chart = base.mark_line() + base.mark_point()
    return with_caption(chart, "How identifiable is a user from the last maxlen items?",
                        provenance)


def maxlen_curves(
    curves: pd.DataFrame,
    metrics: Sequence[str] = ("HR@1", "HR@10", "NDCG@10"),
    provenance: Any = None,
) -> Any:
    """Chapter 1(b): metrics against maxlen, one panel per metric, a data-set selector.

    ``curves``: columns ``dataset``, ``maxlen``, ``metric``, ``mean``, ``std``, ``seeds``
    (from :func:`seqnb.analysis.mean_std`, long form). The selector (a dropdown bound to a
    parameter) shows one data set at a time; tooltips give mean, std and the seed count.
    """
    data = curves[curves["metric"].isin(metrics)].copy()
    data["low"] = (data["mean"] - data["std"].fillna(0)).clip(lower=0)
    data["high"] = data["mean"] + data["std"].fillna(0)
    sel = dataset_selector(data["dataset"])
    x = _maxlen_axis(data["maxlen"])
    tooltip = [alt.Tooltip("dataset:N"), alt.Tooltip("maxlen:Q"), alt.Tooltip("metric:N"),
               alt.Tooltip("mean:Q", format=".4f"), alt.Tooltip("std:Q", format=".4f"),
               alt.Tooltip("seeds:Q")]
    base = alt.Chart().transform_filter(alt.datum.dataset == sel)
    band = base.mark_area(opacity=0.2, color=PALETTE[0]).encode(
        x=x, y=alt.Y("low:Q", title=None), y2="high:Q")
    line = base.mark_line(color=PALETTE[0], point=True).encode(
        x=x, y=alt.Y("mean:Q", title="test metric", scale=alt.Scale(zero=False)),
        tooltip=tooltip)
    chart = (
        alt.layer(band, line, data=data)
        .properties(width=160, height=SMALL_HEIGHT + 20)  # three panels fit the page column
        .facet(column=alt.Column("metric:N", title=None, sort=list(metrics)))
        .resolve_scale(y="independent")
        .add_params(sel)
    )
    return with_caption(chart, "Test metrics against maxlen (pick a data set)", provenance)


def maxlen_overview(curves: pd.DataFrame, metric: str = "NDCG@10",
                    provenance: Any = None) -> Any:
    """All data sets at once: ``metric`` relative to maxlen = 1, against maxlen."""
    data = curves[curves["metric"] == metric].copy()
    if data.empty:
        return with_caption(alt.Chart(pd.DataFrame({"x": []})).mark_point(),
                            f"{metric} against maxlen (no runs)", provenance)
    ref = data[data["maxlen"] == data.groupby("dataset")["maxlen"].transform("min")]
    ref = ref.set_index("dataset")["mean"]
    data["relative"] = data["mean"] / data["dataset"].map(ref)
    base = alt.Chart(data).encode(
        x=_maxlen_axis(data["maxlen"]),
        y=alt.Y("relative:Q", title=f"{metric} / {metric} at the smallest maxlen",
                scale=alt.Scale(zero=False)),
        color=alt.Color("dataset:N", scale=dataset_scale(data["dataset"]),
                        legend=dataset_legend(data["dataset"])),
        tooltip=[alt.Tooltip("dataset:N"), alt.Tooltip("maxlen:Q"),
                 alt.Tooltip("mean:Q", format=".4f", title=metric),
                 alt.Tooltip("relative:Q", format=".3f")],
    )
    rule = alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(color="#999", strokeDash=[4, 3]) \
        .encode(y="y:Q")
    chart = rule + base.mark_line() + base.mark_point()
    return with_caption(chart, f"{metric} relative to the shortest context, all data sets",
                        provenance)


def attention_last_chart(attention: pd.DataFrame, provenance: Any = None) -> Any:
    """Per-layer attention mass from the last position onto itself (the last item).

    ``attention``: columns ``dataset``, ``layer`` (1-based), ``mean``, ``std``, ``seeds``;
    optionally ``setting`` (e.g. 'SASRec (2 blocks)': one panel each) and ``uniform`` (the
    mass an even spread over each user's items would put on the last one, drawn as a tick).
    """
    data = attention.copy()
    data["layer"] = "layer " + data["layer"].astype(int).astype(str)
    data["low"] = (data["mean"] - data["std"].fillna(0)).clip(lower=0)
    data["high"] = (data["mean"] + data["std"].fillna(0)).clip(upper=1)
    layers_order = sorted(set(data["layer"]))
    y = alt.Y("dataset:N", title=None, sort=list(dict.fromkeys(data["dataset"])),
              axis=alt.Axis(labelExpr=_short_label_expr(data["dataset"], "datum.value")))
    base = alt.Chart().encode(y=y, yOffset=alt.YOffset("layer:N", sort=layers_order))
    bars = base.mark_bar().encode(
        x=alt.X("mean:Q", title="attention on the last item", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("layer:N", title=None, sort=layers_order,
                        scale=alt.Scale(range=list(PALETTE[:6]))),
        tooltip=[alt.Tooltip("dataset:N"), alt.Tooltip("layer:N"),
                 *([alt.Tooltip("setting:N", title="model")] if "setting" in data else []),
                 alt.Tooltip("mean:Q", format=".3f", title="attention on last"),
                 alt.Tooltip("std:Q", format=".3f"), alt.Tooltip("seeds:Q")],
    )
    layers = [bars, base.mark_rule(color="#333").encode(x="low:Q", x2="high:Q")]
    if "uniform" in data.columns:
        layers.append(
            alt.Chart().mark_tick(color="#333", thickness=2).encode(
                y=y, x="uniform:Q",
                tooltip=[alt.Tooltip("dataset:N"),
                         alt.Tooltip("uniform:Q", format=".3f", title="even spread")]))
    chart = alt.layer(*layers, data=data).properties(width=SMALL_WIDTH, height=alt.Step(8))
    if "setting" in data.columns and data["setting"].nunique() > 1:
        # two panels to a row: four models side by side are wider than the page column
        chart = chart.facet(facet=alt.Facet("setting:N", title=None,
                                            sort=list(dict.fromkeys(data["setting"]))),
                            columns=2)
    return with_caption(chart, "How much attention lands on the last item, per layer "
                               "(tick: an even spread over the user's items)", provenance)


def attention_offset_chart(offsets: pd.DataFrame, max_offset: int = 20,
                           provenance: Any = None) -> Any:
    """Mean attention from the last position to the key ``offset`` steps back, per layer.

    ``offsets``: columns ``dataset``, ``layer``, ``offset`` (0 = the last item), ``mean``.
    One line per layer, a data-set selector.
    """
    data = offsets[offsets["offset"] <= max_offset].copy()
    data["layer"] = data["layer"].astype(str)
    sel = dataset_selector(data["dataset"], name="attention_dataset")
    chart = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("offset:Q", title="steps back from the last item (0 = last item)"),
            y=alt.Y("mean:Q", title="mean attention weight"),
            color=alt.Color("layer:N", title="layer", scale=alt.Scale(range=list(PALETTE[:6]))),
            tooltip=[alt.Tooltip("dataset:N"), alt.Tooltip("layer:N"), alt.Tooltip("offset:Q"),
                     alt.Tooltip("mean:Q", format=".3f")],
        )
        .transform_filter(alt.datum.dataset == sel)
        .add_params(sel)
    )
    return with_caption(chart, "Where the last position attends, by distance", provenance)


def model_comparison(
    summary: pd.DataFrame,
    order: Sequence[str],
    metrics: Sequence[str] = ("HR@1", "HR@10", "NDCG@10"),
    highlight: str | None = None,
    title: str = "Test metrics by model",
    provenance: Any = None,
) -> Any:
    """Chapters 2 and 3: one bar per model (``setting``) with ± std, per metric and data set.

    ``summary``: long form with columns ``dataset``, ``setting``, ``metric``, ``mean``,
    ``std``, ``seeds``. ``order`` fixes the bar order; ``highlight`` gets the accent colour.
    A data-set selector shows one data set at a time.
    """
    data = summary[summary["metric"].isin(metrics) & summary["setting"].isin(order)].copy()
    data["low"] = (data["mean"] - data["std"].fillna(0)).clip(lower=0)
    data["high"] = data["mean"] + data["std"].fillna(0)
    sel = dataset_selector(data["dataset"], name="model_dataset")
    colors = [PALETTE[3] if s == highlight else PALETTE[0] for s in order]
    y = alt.Y("setting:N", title=None, sort=list(order))
    base = alt.Chart().transform_filter(alt.datum.dataset == sel)
    bars = base.mark_bar().encode(
        y=y, x=alt.X("mean:Q", title=None, axis=alt.Axis(tickCount=3)),
        color=alt.Color("setting:N", scale=alt.Scale(domain=list(order), range=colors),
                        legend=None),
        tooltip=[alt.Tooltip("dataset:N"), alt.Tooltip("setting:N", title="model"),
                 alt.Tooltip("metric:N"), alt.Tooltip("mean:Q", format=".4f"),
                 alt.Tooltip("std:Q", format=".4f"), alt.Tooltip("seeds:Q")])
    err = base.mark_rule(color="#333").encode(y=y, x="low:Q", x2="high:Q")
    chart = (
        alt.layer(bars, err, data=data)
        .properties(width=150, height=alt.Step(18))  # three panels fit the page column
        .facet(column=alt.Column("metric:N", title=None, sort=list(metrics)))
        .resolve_scale(x="independent")
        .add_params(sel)
    )
    return with_caption(chart, title, provenance)


def block_comparison(summary: pd.DataFrame, provenance: Any = None, **kw: Any) -> Any:
    """Chapter 2: SASRec with 4/3/2/1 blocks against ZeroBlock (see :func:`model_comparison`)."""
    order = [s for s in dict.fromkeys(summary["setting"]) if s != "ZeroBlock"] + ["ZeroBlock"]
    return model_comparison(summary, order, highlight="ZeroBlock",
                            title="SASRec blocks against the zero-block model",
                            provenance=provenance, **kw)


def stamp_comparison(summary: pd.DataFrame, provenance: Any = None, **kw: Any) -> Any:
    """Chapter 3: full STAMP against its 'only h_t' and 'only m_t' ablations."""
    order = list(dict.fromkeys(summary["setting"]))
    return model_comparison(summary, order, highlight=None,
                            title="STAMP and its ablations", provenance=provenance, **kw)


def validation_chart(curves: pd.DataFrame, order: Sequence[str] | None = None,
                     metric: str = "NDCG@10", provenance: Any = None) -> Any:
    """Validation ``metric`` against epoch: one line per run (colour = setting), a dot at
    the epoch model selection kept, a data-set selector.

    ``curves``: from :func:`seqnb.analysis.validation_curves` (``dataset``, ``setting``,
    ``seed``, ``epoch``, ``value``, ``best``). A line that still rises at its right end is a
    run stopped before it converged.
    """
    shown = set(curves["setting"])
    order = [o for o in (order if order is not None else dict.fromkeys(curves["setting"]))
             if o in shown]
    sel = dataset_selector(curves["dataset"], name="validation_dataset")
    color = alt.Color("setting:N", title="model", sort=order,
                      scale=alt.Scale(domain=order, range=list(PALETTE[: len(order)])))
    tooltip = [alt.Tooltip("dataset:N"), alt.Tooltip("setting:N", title="model"),
               alt.Tooltip("seed:Q"), alt.Tooltip("epoch:Q"),
               alt.Tooltip("value:Q", format=".4f", title=f"valid {metric}")]
    base = alt.Chart().transform_filter(alt.datum.dataset == sel).encode(
        x=alt.X("epoch:Q", title="epoch"),
        y=alt.Y("value:Q", title=f"validation {metric}", scale=alt.Scale(zero=False)),
        color=color)
    lines = base.mark_line(strokeWidth=1.5, opacity=0.8).encode(
        detail="seed:N", tooltip=tooltip)
    best = base.mark_point(filled=True, size=45).encode(tooltip=tooltip).transform_filter(
        alt.datum.best)
    chart = alt.layer(lines, best, data=curves).properties(width=WIDTH, height=HEIGHT).add_params(sel)
    return with_caption(chart, f"Validation {metric} during training (dot: the epoch kept)",
                        provenance)


def shuffle_bars(
    summary: pd.DataFrame,
    metrics: Sequence[str] = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10"),
    provenance: Any = None,
) -> Any:
    """Chapter 4: relative change of each metric under shuffling, per data set and protocol.

    ``summary``: columns ``dataset``, ``protocol`` ('window' / 'history'), ``metric``,
    ``relative_change`` (e.g. -0.05 = 5 % lower), optional ``p_value``.
    """
    data = summary[summary["metric"].isin(metrics)].copy()
    data["protocol"] = "shuffled (" + data["protocol"] + ")"
    tooltip = [alt.Tooltip("dataset:N"), alt.Tooltip("protocol:N"), alt.Tooltip("metric:N"),
               alt.Tooltip("relative_change:Q", format="+.1%", title="change")]
    if "p_value" in data.columns:
        tooltip.append(alt.Tooltip("p_value:Q", format=".2g", title="paired p (Wilcoxon)"))
    protocols = [p for p in ("shuffled (window)", "shuffled (history)")
                 if p in set(data["protocol"])]
    chart = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("dataset:N", title=None, sort=list(dict.fromkeys(data["dataset"])),
                    axis=alt.Axis(labelExpr=_short_label_expr(data["dataset"], "datum.value"))),
            yOffset=alt.YOffset("protocol:N", sort=protocols),
            x=alt.X("relative_change:Q", title=None, axis=alt.Axis(format="%")),
            color=alt.Color("protocol:N", title="protocol",
                            scale=alt.Scale(domain=protocols,
                                            range=[SETTING_COLORS[p] for p in protocols]),
                            legend=alt.Legend(orient="bottom")),  # the panels get the width
            tooltip=tooltip,
        )
        .properties(width=100, height=alt.Step(9))
        .facet(column=alt.Column("metric:N", title=None, sort=list(metrics)))
    )
    return with_caption(chart, "Relative change of each metric when the earlier items are "
                               "shuffled (vs the original order)",
                        provenance)


def sequentiality_scatter(summary: pd.DataFrame, provenance: Any = None) -> Any:
    """Cross-data-set summary: shuffle drop (x) against maxlen gain (y), one point per data set.

    ``summary``: columns ``dataset``, ``shuffle_drop`` (relative NDCG@10 change under the
    window shuffle; negative = worse), ``maxlen_gain`` (relative NDCG@10 gain of the best
    maxlen over maxlen 1), optional ``best_maxlen``. Markovian data sets sit near (0, 0).
    """
    data = summary.dropna(subset=["shuffle_drop", "maxlen_gain"]).copy()
    tooltip = [alt.Tooltip("dataset:N"),
               alt.Tooltip("shuffle_drop:Q", format="+.1%", title="NDCG@10 change, shuffled"),
               alt.Tooltip("maxlen_gain:Q", format="+.1%", title="NDCG@10 gain, best maxlen")]
    if "shuffle_drop_history" in data.columns:
        tooltip.append(alt.Tooltip("shuffle_drop_history:Q", format="+.1%",
                                   title="NDCG@10 change, shuffle-then-truncate"))
    if "best_maxlen" in data.columns:
        tooltip.append(alt.Tooltip("best_maxlen:Q", title="best maxlen"))
    base = alt.Chart(data).encode(
        x=alt.X("shuffle_drop:Q", title="NDCG@10 change when earlier items are shuffled",
                axis=alt.Axis(format="%")),
        y=alt.Y("maxlen_gain:Q", title="NDCG@10 gain: best maxlen vs maxlen 1",
                axis=alt.Axis(format="%")),
    )
    points = base.mark_point(size=90, filled=True).encode(
        color=alt.Color("dataset:N", scale=dataset_scale(data["dataset"]), legend=None),
        tooltip=tooltip)
    labels = base.mark_text(align="left", dx=7, dy=-6, fontSize=11).encode(
        text="label:N").transform_calculate(label=_short_label_expr(data["dataset"]))
    zero = pd.DataFrame({"v": [0.0]})
    rules = (alt.Chart(zero).mark_rule(color="#bbb").encode(x="v:Q")
             + alt.Chart(zero).mark_rule(color="#bbb").encode(y="v:Q"))
    chart = (rules + points + labels).properties(width=WIDTH, height=WIDTH * 0.75)
    return with_caption(chart, "How sequential is each data set?", provenance)


def _short_label_expr(datasets: Iterable[str], field: str = "datum.dataset") -> str:
    """A Vega expression mapping each data set name (in ``field``) to its short label."""
    expr = field
    for d, label in short_names(datasets).items():
        expr = f"{field} === {d!r} ? {label!r} : ({expr})"
    return expr


def empty_note(message: str) -> alt.Chart:
    """A small chart-shaped note for a chart that has no data yet (book profile). It shows
    no number, so it has no provenance; ``usermeta`` marks it as a note."""
    return alt.Chart(pd.DataFrame({"text": [message]})).mark_text(
        align="left", fontSize=12, color="#666").encode(text="text:N").properties(
        width=WIDTH, height=30, usermeta={"seqnb": "note"})


__all__ = [
    "CONFIG_COLUMNS", "DATASET_ORDER", "DATASET_PALETTE", "FONT", "HEIGHT", "MISSING",
    "PAGE_WIDTH", "PALETTE", "SETTING_COLORS", "SMALL_HEIGHT", "SMALL_WIDTH", "UNAVAILABLE", "WIDTH",
    "apply_theme", "attention_last_chart", "attention_offset_chart", "block_comparison",
    "config_table", "coverage_table", "dataset_color", "dataset_legend", "dataset_scale", "dataset_selector",
    "empty_note", "format_cell", "format_mean_std", "labeller", "maxlen_curves", "maxlen_overview",
    "metric_table", "model_comparison", "provenance_caption", "sequentiality_scatter", "setup", "short_name", "short_names",
    "show_convergence", "show_run_overview", "shuffle_bars", "stamp_comparison", "style_table",
    "unique_share_chart", "validation_chart", "with_caption",
]


def show_run_overview(runs: Any, params: Any, datasets: Sequence[str] | None = None) -> None:
    """Display a chapter's run overview: which runs are stored per data set (with their
    provenance), and the runs still missing with the commands that train them."""
    from IPython.display import Markdown, display

    from seqnb import analysis

    shown = list(params.shown_datasets if datasets is None else datasets)
    display(style_table(analysis.coverage(runs, shown, params.unavailable),
                        caption=provenance_caption(runs)))
    missing = analysis.missing_summary(runs, params)
    if missing.empty:
        display(Markdown("Every run of this chapter is stored."))
        return
    display(Markdown(
        f"**{len(runs.missing)} of the {len(runs.configs)} runs this chapter shows are not "
        "stored yet** (the book profile never trains); the tables and charts show what is "
        "stored."))
    display(style_table(missing, caption="Runs not stored yet, and how to train them"))


def show_convergence(runs: Any, order: Sequence[str] | None = None,
                     window: int = 10) -> pd.DataFrame:
    """Display the validation curves of a chapter's runs (:func:`validation_chart`) and the
    rise over their last ``window`` epochs; return that rise (:func:`seqnb.analysis.late_gain`)
    for the chapter's conclusions. ``order``: the settings' legend order (default: the order
    of the chapter's configurations)."""
    from IPython.display import Markdown, display

    from seqnb import analysis

    curves = analysis.validation_curves(runs.results)
    late = analysis.late_gain(curves, window)
    if order is None:  # the chapter's own order of settings
        order = list(dict.fromkeys(analysis.run_label(c.to_dict()) for c in runs.configs))
    display(validation_chart(curves, order, provenance=runs) if not curves.empty
            else empty_note("No stored validation curves yet."))
    if late.empty:
        display(Markdown(f"Too few evaluated epochs to measure the last {window} epochs' rise."))
        return late
    shown = late.drop(columns="window").assign(
        late_gain=late["late_gain"].map(analysis.pct)).rename(columns={
        "late_gain": f"rise over the last {window} epochs", "last_epoch": "last epoch"})
    display(style_table(shown, caption=f"Validation NDCG@10 at the last epoch / {window} epochs "
                        "earlier − 1, mean over seeds. " + provenance_caption(runs)))
    return late
