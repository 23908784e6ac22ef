"""The notebooks' standard Altair charts, rendered as static SVG (no JavaScript, no network).

:func:`offline` switches Altair to its ``svg`` renderer (vl-convert draws the chart in the
kernel): an executed notebook and its HTML report carry the drawn chart itself, so they
render anywhere, offline, with no CDN. Every function takes a polars or pandas DataFrame.
"""

from __future__ import annotations

from typing import Any

import altair as alt

__all__ = [
    "alert_timeline",
    "genre_bars",
    "lag_over_time",
    "metric_comparison",
    "offline",
    "pr_curves",
    "window_series",
]


def offline() -> None:
    """Render charts as inline SVG (call once per notebook; the lab helpers' notebooks do)."""
    alt.renderers.enable("svg")
    alt.data_transformers.disable_max_rows()


def _data(frame: Any) -> Any:
    return frame.to_pandas() if hasattr(frame, "to_pandas") else frame


def window_series(
    frame: Any, *, time: str = "window_start", value: str, color: str | None = None,
    facet: str | None = None, title: str = "",
) -> alt.Chart:  # fmt: skip
    """A value per window over time, one line per ``color`` (e.g. genre), optionally one
    panel per ``facet`` (e.g. window size)."""
    encoding: dict[str, Any] = {"x": alt.X(f"{time}:T", title=None), "y": alt.Y(f"{value}:Q")}
    if color:
        encoding["color"] = alt.Color(f"{color}:N")
    chart = alt.Chart(_data(frame)).mark_line(point=True).encode(**encoding)
    chart = chart.properties(width=520, height=180, title=title)
    return chart.facet(row=alt.Row(f"{facet}:N")) if facet else chart


def genre_bars(frame: Any, *, genre: str = "genre", value: str, title: str = "") -> alt.Chart:
    return (
        alt.Chart(_data(frame))
        .mark_bar()
        .encode(y=alt.Y(f"{genre}:N", sort="-x", title=None), x=alt.X(f"{value}:Q"))
        .properties(width=420, height=alt.Step(16), title=title)
    )


def alert_timeline(
    frame: Any, *, time: str = "detected_at", detector: str = "detector", title: str = ""
) -> alt.Chart:
    """One tick per alert over time, a row per detector."""
    return (
        alt.Chart(_data(frame))
        .mark_tick(thickness=2, size=14)
        .encode(
            x=alt.X(f"{time}:T", title=None),
            y=alt.Y(f"{detector}:N", title=None),
            color=alt.Color(f"{detector}:N", legend=None),
        )
        .properties(width=560, title=title)
    )


def lag_over_time(
    frame: Any, *, time: str = "time", lag: str = "lag", group: str = "group", title: str = ""
) -> alt.Chart:
    return (
        alt.Chart(_data(frame))
        .mark_area(opacity=0.6)
        .encode(
            x=alt.X(f"{time}:T", title=None),
            y=alt.Y(f"{lag}:Q", stack=None),
            color=alt.Color(f"{group}:N"),
        )
        .properties(width=560, height=180, title=title)
    )


def metric_comparison(
    frame: Any, *, metric: str = "metric", value: str = "value", model: str = "model",
    title: str = "",
) -> alt.Chart:  # fmt: skip
    """Grouped bars: each metric for each model (e.g. ALS vs popularity)."""
    return (
        alt.Chart(_data(frame))
        .mark_bar()
        .encode(
            x=alt.X(f"{model}:N", title=None),
            y=alt.Y(f"{value}:Q"),
            color=alt.Color(f"{model}:N"),
            column=alt.Column(f"{metric}:N", title=None),
        )
        .properties(width=90, height=160, title=title)
    )


def pr_curves(
    frame: Any, *, recall: str = "recall", precision: str = "precision",
    curve: str = "scenario", title: str = "",
) -> alt.Chart:  # fmt: skip
    """Precision against recall, one line per ``curve`` (e.g. a fraud scenario)."""
    return (
        alt.Chart(_data(frame))
        .mark_line(point=True, interpolate="step-after")
        .encode(
            x=alt.X(f"{recall}:Q", title="recall (share of incidents found)",
                    scale=alt.Scale(domain=[0, 1])),
            y=alt.Y(f"{precision}:Q", title="precision (share of alerts that are fraud)",
                    scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(f"{curve}:N", title=curve),
            tooltip=[curve, recall, precision],
        )
        .properties(width=520, height=320, title=title)
    )  # fmt: skip
