"""The page checker itself: it must see what a reader would see (headless Chromium, no
network), and so fail on each kind of residue a published report must not carry."""

from __future__ import annotations

import base64
from pathlib import Path

import altair as alt
import nbformat
import pandas as pd
import pytest

from movieflix_lab.lab.charts import genre_bars, offline
from movieflix_lab.reports.html import render_html, visible_cells
from movieflix_lab.reports.look import chart_titles, look_at


def _svg(chart: alt.Chart) -> str:
    import vl_convert as vlc

    return str(vlc.vegalite_to_svg(chart.to_json()))


def _page(tmp_path: Path, body: str, *, charts: tuple[str, ...] = ()) -> Path:
    images = "".join(
        f'<img alt="chart" src="data:image/svg+xml;base64,{base64.b64encode(s.encode()).decode()}">'
        for s in charts
    )
    page = tmp_path / "report.html"
    page.write_text(f"<!DOCTYPE html><html><body><h1>r</h1>{body}{images}</body></html>")
    return page


@pytest.fixture(scope="module")
def titled_chart() -> str:
    offline()
    frame = pd.DataFrame({"genre": ["drama", "crime"], "avg": [1200.0, 900.0]})
    chart = genre_bars(frame, value="avg", value_title="average watch (s)", title="Watch time",
                       caption="Longer bars: longer viewings.")  # fmt: skip
    return _svg(chart)


def test_a_clean_page_has_no_problem_and_a_screenshot(tmp_path: Path, titled_chart: str) -> None:
    page = _page(tmp_path, "<p>726 viewings</p>", charts=(titled_chart,))
    look = look_at(page, tmp_path / "report.png")
    assert look.problems == [] and look.charts == 1
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<pre>/x/y.py:3: FutureWarning: use z</pre>", "a warning"),
        ("<pre>Traceback (most recent call last):\n  File x</pre>", "a traceback"),
        ("<pre>IProgress not found. Please update jupyter and ipywidgets.</pre>", "widget"),
        ("<pre> 40%|████      | 4/10 [00:01&lt;00:02]</pre>", "progress-bar residue"),
        ("<pre>shape: (3, 3)</pre>", "a polars shape line"),
        ("<table><tr><td>str</td><td>i64</td><td>f64</td></tr></table>", "a polars dtype row"),
        ("<p>md ## Average watch time</p>", "md ..."),
        ("<p>md Average watch time per genre</p>", "md ..."),
        ("<pre>WARNING:quixstreams:state is stale</pre>", "a warning"),
        ("<table><tr><td>i64</td></tr></table>", "a polars dtype row"),
        ("<table><tr><td>datetime[μs, UTC]</td><td>str</td></tr></table>", "a polars dtype row"),
        ('<div class="output_subarea"> </div>', "empty output block"),
    ],
)
def test_each_kind_of_residue_is_a_problem(tmp_path: Path, body: str, expected: str) -> None:
    look = look_at(_page(tmp_path, body))
    assert any(expected in problem for problem in look.problems), look.problems


def test_a_chart_without_titles_is_a_problem(tmp_path: Path) -> None:
    offline()
    bare = _svg(alt.Chart(pd.DataFrame({"a": [1, 2], "b": [3, 4]})).mark_line()
                .encode(x=alt.X("a:Q", title=None), y=alt.Y("b:Q", title=None)))  # fmt: skip
    assert chart_titles(bare)["axis_titles"] == [] and chart_titles(bare)["untitled_axes"] == 2
    look = look_at(_page(tmp_path, "", charts=(bare,)))
    assert "chart 1 has no title" in look.problems
    assert any("2 axis/axes without a title" in problem for problem in look.problems)


def test_one_untitled_axis_among_titled_ones_is_a_problem(tmp_path: Path) -> None:
    offline()
    half = _svg(alt.Chart(pd.DataFrame({"a": [1, 2], "b": [3, 4]})).mark_line()
                .encode(x=alt.X("a:Q", title="a (s)"), y=alt.Y("b:Q", title=None))
                .properties(title="half titled"))  # fmt: skip
    look = look_at(_page(tmp_path, "", charts=(half,)))
    assert look.problems == ["chart 'half titled': 1 axis/axes without a title"]


def test_headers_that_are_words_are_not_a_dtype_row(tmp_path: Path) -> None:
    page = _page(tmp_path, "<table><tr><th>date</th><th>time</th></tr><tr><td>a</td></tr></table>")
    assert look_at(page).problems == []


def test_the_page_leaves_out_cells_with_nothing_to_show(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    quiet = nbformat.v4.new_code_cell("x = 1")
    widget = nbformat.v4.new_code_cell("bar()")
    widget.outputs = [nbformat.v4.new_output(
        "display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"},
                              "text/plain": "HBox()"})]  # fmt: skip
    blank = nbformat.v4.new_code_cell("print()")
    blank.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n")]
    shown = nbformat.v4.new_code_cell("print('726 viewings')")
    shown.outputs = [nbformat.v4.new_output("stream", name="stdout", text="726 viewings\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("## Windows"), quiet, widget, blank, shown]
    assert [c.cell_type for c in visible_cells(nb, hide_input=True).cells] == ["markdown", "code"]
    path = tmp_path / "notebook.ipynb"
    nb.cells = [nbformat.v4.new_markdown_cell("## Windows"), quiet, widget, blank, shown]
    nbformat.write(nb, path)
    page = tmp_path / "report.html"
    page.write_text(render_html(path, {"name": "t", "status": "succeeded"}))
    assert "726 viewings" in page.read_text() and "HBox" not in page.read_text()
    assert look_at(page).problems == []
