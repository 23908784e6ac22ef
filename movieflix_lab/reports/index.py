"""``reports/index.html``: every report run, newest first, with its status and links."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

__all__ = ["list_runs", "write_index"]


def list_runs(reports_dir: Path) -> list[dict[str, Any]]:
    runs = []
    for manifest in reports_dir.glob("*/*/manifest.json"):
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        data["_folder"] = str(manifest.parent.relative_to(reports_dir))
        runs.append(data)
    runs.sort(key=lambda r: (r.get("started_at", ""), r["_folder"]), reverse=True)
    return runs


def write_index(reports_dir: Path) -> Path:
    rows = []
    for run in list_runs(reports_dir):
        folder = run["_folder"]
        status = html.escape(str(run.get("status")))
        params = ", ".join(f"{k}={v!r}" for k, v in run.get("parameters", {}).items())
        links = " · ".join(
            f'<a href="{html.escape(folder)}/{name}">{label}</a>'
            for name, label in (("report.html", "report"), ("report.png", "screenshot"),
                                ("notebook.ipynb", "notebook"), ("manifest.json", "manifest"))
            if (reports_dir / folder / name).exists()
        )  # fmt: skip
        page = run.get("page") or {}
        problems = page.get("problems") or []
        looked = (
            "not checked" if not page.get("checked")
            else "clean" if not problems
            else f'<span class="status-failed">{len(problems)} problem(s)</span>'
        )  # fmt: skip
        rows.append(
            f"<tr><td>{html.escape(run.get('name', ''))}</td>"
            f"<td>{html.escape(run.get('started_at', ''))}</td>"
            f'<td class="status-{status}">{status}</td>'
            f"<td>{run.get('duration_s', 0):.1f} s</td>"
            f"<td>{looked}</td>"
            f"<td><code>{html.escape(params)}</code></td><td>{links}</td></tr>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>MovieFlix Lab reports</title>
<style>body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: 3px 8px; }}
.status-succeeded {{ color: #1a7f37; }} .status-failed {{ color: #cf222e; font-weight: bold; }}
</style></head><body><h1>MovieFlix Lab reports</h1>
<p>Each page was looked at in headless Chromium, offline: "clean" means no warning, traceback,
progress bar, empty block or untitled chart was on it (the manifest lists any problem).</p>
<table><tr><th>report</th><th>started</th><th>status</th><th>duration</th><th>page</th>
<th>parameters</th><th>links</th></tr>
{"".join(rows)}
</table></body></html>
"""
    reports_dir.mkdir(parents=True, exist_ok=True)
    target = reports_dir / "index.html"
    target.write_text(page)
    return target
