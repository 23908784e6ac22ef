"""An executed notebook as one self-contained HTML page: no script, no stylesheet, no font
fetched from anywhere (charts are inline SVG), inputs hidden unless asked for.

With inputs hidden, a code cell that shows nothing (an assignment, an import, the parameters)
is left out of the page, as are empty outputs and widget outputs (a progress bar has no
meaning in a published page): no empty grey block.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

__all__ = ["render_html"]

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
header { border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
.status-succeeded { color: #1a7f37; } .status-failed { color: #cf222e; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { border: 1px solid #ddd; padding: 2px 8px; }
pre { background: #f6f8fa; padding: .5rem; overflow-x: auto; }
table.lab-table { font-variant-numeric: tabular-nums; }
table.lab-table caption { caption-side: bottom; text-align: left; color: #555; font-size: 90%; }
table.lab-table th { background: #f6f8fa; }
a.anchor-link { display: none; }
.jp-OutputArea-output svg, .output_svg svg { max-width: 100%; height: auto; }
"""


#: Output types a published page cannot show (a live widget: rich's or tqdm's progress).
WIDGET = "application/vnd.jupyter.widget-view+json"


def _shown(output: Any) -> bool:
    if output.get("output_type") == "stream":
        return bool(str(output.get("text", "")).strip())
    data = output.get("data", {})
    if output.get("output_type") in ("display_data", "execute_result"):
        visible = {k: v for k, v in data.items() if k != WIDGET}
        shown = any(str(v).strip() for v in visible.values())
        return shown and WIDGET not in data
    return True  # an error: always shown


def visible_cells(nb: Any, *, hide_input: bool) -> Any:
    """The notebook as the page shows it: empty and widget outputs dropped; with inputs
    hidden, code cells left with nothing to show dropped too."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if _shown(o)]
    if hide_input:
        nb.cells = [c for c in nb.cells if c.cell_type != "code" or c.outputs]
    return nb


_IMAGE = re.compile(r'<img alt="No description has been provided for this image" '
                    r'src="data:image/svg\+xml;base64,([^"]+)"')  # fmt: skip


def _described(match: re.Match[str]) -> str:
    """A chart's image described by its title (nbconvert's placeholder says nothing)."""
    from movieflix_lab.reports.look import chart_titles

    svg = base64.b64decode(match.group(1)).decode("utf-8", "replace")
    title = " — ".join(chart_titles(svg)["title"]) or "chart"
    return f'<img alt="{html.escape(title)}" src="data:image/svg+xml;base64,{match.group(1)}"'


def render_html(notebook: Path, manifest: dict[str, Any], *, hide_input: bool = True) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic", exclude_input=hide_input,
                            exclude_input_prompt=True, exclude_output_prompt=True)  # fmt: skip
    nb = visible_cells(nbformat.read(notebook, as_version=4), hide_input=hide_input)
    body, _ = exporter.from_notebook_node(nb)
    body = _IMAGE.sub(_described, body)
    status = manifest.get("status", "unknown")
    params = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(repr(v))}</td></tr>"
        for k, v in manifest.get("parameters", {}).items()
    )
    error = manifest.get("error")
    title = f"{manifest.get('name', 'report')} — {manifest.get('run_id', '')}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body><header><h1>{html.escape(manifest.get("name", "report"))}</h1>
<p>run {html.escape(manifest.get("run_id", ""))} ·
<span class="status-{html.escape(status)}">{html.escape(status)}</span> ·
{manifest.get("duration_s", 0):.1f} s · git {html.escape(str(manifest.get("git_sha")))} ·
<a href="notebook.ipynb">notebook</a> · <a href="manifest.json">manifest</a> ·
<a href="report.png">screenshot</a></p>
{f"<pre>{html.escape(error)}</pre>" if error else ""}
<table>{params}</table></header>
{body}
</body></html>
"""
