"""Tables as a reader wants them in a published report: plain HTML, numbers formatted.

:func:`table` wraps a polars or pandas frame (or a list of dicts) for display: no index, no
dtype row, no ``shape:`` line; integers with thousands separators, decimals to a few
significant digits, times in UTC with their date, missing values as an em dash. Column
names are shown as given, so a notebook names them with their units
(``"avg watch (s)"``). :func:`offline` also sets polars' own display the same way for any
frame shown without it.

>>> print(table([{"genre": "drama", "viewings": 12345, "avg watch (s)": 1234.5678}]).text())
genre  viewings  avg watch (s)
drama    12,345          1,235
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

__all__ = ["Table", "configure_polars", "format_value", "table"]


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NaT (the values not equal to themselves)."""
    try:
        return value is None or bool(value != value)
    except (TypeError, ValueError):  # an array: not one missing value
        return False


def format_value(value: Any) -> str:
    """One cell as text: ``12,345``, ``0.0365``, ``1,235``, ``2026-11-01 18:30 UTC``, ``—``."""
    if _missing(value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return f"{value:g}"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            from datetime import UTC

            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00") + " UTC"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):  # a list of records: one per "; "
        joiner = "; " if any(isinstance(v, Mapping) for v in value) else ", "
        return joiner.join(format_value(v) for v in value)
    return str(value)


def _rows(frame: Any, limit: int) -> tuple[list[str], list[list[Any]], int]:
    """Columns, the first ``limit`` rows, and how many rows there are."""
    if hasattr(frame, "to_dicts"):  # polars
        return list(frame.columns), [list(r) for r in frame.head(limit).iter_rows()], frame.height
    if hasattr(frame, "to_dict") and hasattr(frame, "columns"):  # pandas
        rows = frame.head(limit).astype(object).values.tolist()
        return [str(c) for c in frame.columns], rows, len(frame)
    records = list(frame)
    columns: list[str] = []
    for record in records:
        columns.extend(k for k in record if k not in columns)
    return columns, [[r.get(c) for c in columns] for r in records[:limit]], len(records)


def _numeric(values: Sequence[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in present
    )


class Table:
    """A frame ready for display (``_repr_html_`` in a notebook, :meth:`text` elsewhere)."""

    def __init__(self, frame: Any, *, caption: str = "", limit: int = 50) -> None:
        self.columns, self.rows, self.total = _rows(frame, limit)
        self.caption = caption
        self._numeric = [_numeric([r[i] for r in self.rows]) for i in range(len(self.columns))]

    def _cells(self) -> list[list[str]]:
        return [[format_value(v) for v in row] for row in self.rows]

    def _repr_html_(self) -> str:
        align = [' style="text-align:right"' if n else "" for n in self._numeric]
        head = "".join(
            f"<th{a}>{html.escape(c)}</th>" for c, a in zip(self.columns, align, strict=True)
        )
        body = "".join(
            "<tr>"
            + "".join(f"<td{a}>{html.escape(v)}</td>" for v, a in zip(row, align, strict=True))
            + "</tr>"
            for row in self._cells()
        )
        more = self.total - len(self.rows)
        note = f"{self.caption}{' · ' if self.caption and more else ''}"
        note += f"first {len(self.rows):,} of {self.total:,} rows" if more else ""
        caption = f"<caption>{html.escape(note)}</caption>" if note else ""
        return (
            f'<table class="lab-table">{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )

    def text(self) -> str:
        cells = self._cells()
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]

        def line(values: Sequence[str]) -> str:
            return "  ".join(
                v.rjust(w) if n else v.ljust(w)
                for v, w, n in zip(values, widths, self._numeric, strict=True)
            ).rstrip()

        return "\n".join([line(self.columns), *(line(r) for r in cells)])

    def __repr__(self) -> str:
        return self.text()


def table(frame: Any, *, caption: str = "", limit: int = 50) -> Table:
    """``frame`` for display as a clean table (see the module docstring)."""
    return Table(frame, caption=caption, limit=limit)


def configure_polars() -> None:
    """polars' own display without the dtype row and the ``shape:`` line."""
    import polars as pl

    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_tbl_hide_column_data_types(True)
    pl.Config.set_float_precision(4)
    pl.Config.set_thousands_separator(",")
