"""Tables as a published page shows them: no dtype row, no shape line, numbers formatted."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from movieflix_lab.lab.session import KeyNumbers
from movieflix_lab.lab.tables import format_value, table


def test_values_are_formatted_for_a_reader() -> None:
    assert format_value(1234567) == "1,234,567"
    assert format_value(0.036512) == "0.0365"
    assert format_value(12.3456) == "12.3"
    assert format_value(4321.9) == "4,322"
    assert format_value(None) == format_value(float("nan")) == "—"
    assert format_value(True) == "yes"
    assert format_value(datetime(2026, 11, 1, 18, 30, tzinfo=UTC)) == "2026-11-01 18:30 UTC"
    assert format_value({"a": 1, "b": 0.5}) == "a: 1, b: 0.5"


def test_a_polars_frame_renders_without_dtypes_or_shape() -> None:
    frame = pl.DataFrame({"genre": ["drama", "crime"], "viewings": [12000, 3],
                          "avg watch (s)": [1234.5, None]})  # fmt: skip
    html = table(frame, caption="per genre")._repr_html_()
    assert "shape:" not in html and "i64" not in html and "str" not in html
    assert "<th>" in html and "avg watch (s)" in html and "12,000" in html and "—" in html
    assert "<caption>per genre</caption>" in html
    assert 'style="text-align:right"' in html  # numbers aligned as numbers


def test_a_long_frame_says_how_much_it_shows() -> None:
    html = table(pl.DataFrame({"n": list(range(100))}), limit=10)._repr_html_()
    assert html.count("<tr>") == 11 and "first 10 of 100 rows" in html


def test_key_numbers_are_a_dict_shown_as_a_table() -> None:
    numbers = KeyNumbers({"viewings": 726, "top_genre": "action"})
    assert numbers == {"viewings": 726, "top_genre": "action"}
    assert "<td>726</td>" in numbers._repr_html_() and "key number" in numbers._repr_html_()
