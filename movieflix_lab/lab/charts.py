"""The notebooks' standard Altair charts, rendered as static SVG (no JavaScript, no network).

:func:`offline` switches Altair to its ``svg`` renderer (vl-convert draws the chart in the
kernel): an executed notebook and its HTML report carry the drawn chart itself, so they
render anywhere, offline, with no CDN. Every function takes a polars or pandas DataFrame.

Every chart says what it shows and how to read it: a title, a one-line caption under it (what
to read from the chart), axis titles with their units, and times on a UTC axis with the date.
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
    "titled",
    "window_series",
]

#: Times with their date, in UTC (the kit's event times are UTC).
DATE_TIME = "%d %b %H:%M"


def offline() -> None:
    """Render charts as inline SVG, and show polars frames without their dtype row and
    ``shape:`` line (call once per notebook; the kit's notebooks do)."""
    from movieflix_lab.lab.tables import configure_polars

    alt.renderers.enable("svg")
    alt.data_transformers.disable_max_rows()
    configure_polars()


def _data(frame: Any) -> Any:
    return frame.to_pandas() if hasattr(frame, "to_pandas") else frame


def titled(title: str, caption: str) -> alt.TitleParams:
    """A chart title with its one-line caption beneath (``chart.properties(title=...)``)."""
    return alt.TitleParams(text=title, subtitle=caption, anchor="start", subtitleColor="#555")


def _time(field: str, title: str, fmt: str = DATE_TIME) -> alt.X:
    return alt.X(f"{field}:T", title=title, scale=alt.Scale(type="utc"),
                 axis=alt.Axis(format=fmt, labelAngle=-30, labelOverlap=True))  # fmt: skip


def window_series(
    frame: Any, *, time: str = "window_start", value: str, value_title: str,
    color: str | None = None, color_title: str | None = None, facet: str | None = None,
    facet_title: str | None = None, title: str, caption: str,
    time_title: str = "window start (UTC)",
) -> alt.Chart:  # fmt: skip
    """A value per window over time, one line per ``color`` (e.g. genre), optionally one
    panel per ``facet`` (e.g. window size)."""
    encoding: dict[str, Any] = {
        "x": _time(time, time_title),
        "y": alt.Y(f"{value}:Q", title=value_title),
        "tooltip": [alt.Tooltip(f"{time}:T", format=DATE_TIME), value] + ([color] if color else []),
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=color_title or color)
    chart = alt.Chart(_data(frame)).mark_line(point=True).encode(**encoding)
    if facet:
        return (
            chart.properties(width=520, height=150)
            .facet(row=alt.Row(f"{facet}:N", title=facet_title or facet))
            .properties(title=titled(title, caption))
        )
    return chart.properties(width=520, height=180, title=titled(title, caption))


def genre_bars(
    frame: Any, *, genre: str = "genre", value: str, value_title: str, title: str, caption: str
) -> alt.Chart:
    """One bar per genre, longest first."""
    return (
        alt.Chart(_data(frame))
        .mark_bar()
        .encode(
            y=alt.Y(f"{genre}:N", sort="-x", title="genre"),
            x=alt.X(f"{value}:Q", title=value_title),
            tooltip=[genre, value],
        )
        .properties(width=420, height=alt.Step(16), title=titled(title, caption))
    )


def alert_timeline(
    frame: Any, *, time: str = "detected_at", detector: str = "detector", title: str,
    caption: str, time_title: str = "event time (UTC)",
) -> alt.Chart:  # fmt: skip
    """One tick per alert over time, a row per detector."""
    return (
        alt.Chart(_data(frame))
        .mark_tick(thickness=2, size=14)
        .encode(
            x=_time(time, time_title),
            y=alt.Y(f"{detector}:N", title="detector"),
            color=alt.Color(f"{detector}:N", legend=None),
        )
        .properties(width=560, title=titled(title, caption))
    )


def lag_over_time(
    frame: Any, *, time: str = "time", lag: str = "lag", group: str = "group", title: str,
    caption: str,
) -> alt.Chart:  # fmt: skip
    """Consumer lag per group at each sample, over the wall-clock time it was sampled."""
    return (
        alt.Chart(_data(frame))
        .mark_line(point=True)
        .encode(
            x=_time(time, "sampled at (UTC)", "%d %b %H:%M:%S"),
            y=alt.Y(f"{lag}:Q", title="lag (records behind the end)"),
            color=alt.Color(f"{group}:N", title="consumer group"),
            tooltip=[alt.Tooltip(f"{time}:T", format="%H:%M:%S"), group, lag],
        )
        .properties(width=560, height=180, title=titled(title, caption))
    )


def metric_comparison(
    frame: Any, *, metric: str = "metric", value: str = "value", model: str = "model",
    title: str, caption: str, value_title: str = "score (0 to 1, higher is better)",
) -> alt.Chart:  # fmt: skip
    """Grouped bars: each metric for each model (e.g. ALS against its baselines)."""
    return (
        alt.Chart(_data(frame))
        .mark_bar()
        .encode(
            x=alt.X(f"{model}:N", title="model", axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y(f"{value}:Q", title=value_title),
            color=alt.Color(f"{model}:N", title="model"),
            column=alt.Column(f"{metric}:N", title="metric"),
            tooltip=[model, metric, alt.Tooltip(f"{value}:Q", format=".4f")],
        )
        .properties(width=90, height=160)
        .properties(title=titled(title, caption))
    )


def pr_curves(
    frame: Any, *, recall: str = "recall", precision: str = "precision",
    curve: str = "scenario", title: str, caption: str,
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
        .properties(width=520, height=320, title=titled(title, caption))
    )  # fmt: skip
