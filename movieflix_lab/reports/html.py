"""An executed notebook as one self-contained HTML page: no script, no stylesheet, no font
fetched from anywhere (charts are inline SVG), inputs hidden unless asked for."""

from __future__ import annotations

import html
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
.jp-OutputArea-output svg, .output_svg svg { max-width: 100%; height: auto; }
"""


def render_html(notebook: Path, manifest: dict[str, Any], *, hide_input: bool = True) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic", exclude_input=hide_input,
                            exclude_input_prompt=True, exclude_output_prompt=True)  # fmt: skip
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
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
<a href="notebook.ipynb">notebook</a> · <a href="manifest.json">manifest</a></p>
{f"<pre>{html.escape(error)}</pre>" if error else ""}
<table>{params}</table></header>
{body}
</body></html>
"""
