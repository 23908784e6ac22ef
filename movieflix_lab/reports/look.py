"""A report page looked at as a person sees it: drawn by headless Chromium with no network.

:func:`look_at` loads ``report.html`` in Chromium (every request off the machine refused),
reads back the text a reader sees and what was drawn, and writes a full-page screenshot
(``report.png``) beside it. What it reports as problems:

- text a published page should not show: warnings, tracebacks, progress-bar residue,
  polars' ``shape:`` line and dtype row, a markdown cell shown as a literal ``md ...``;
- an empty output block;
- a chart that was not drawn, or one without a title or without a title on each axis.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PROBLEM_TEXT", "PageLook", "chart_titles", "chromium", "look_at"]

_DTYPE = (
    r"(str|bool|null|date|time|cat|object|binary|decimal\[[^\]]*\]|[iuf](8|16|32|64|128)"
    r"|(datetime|duration|list|array|struct|enum)\[[^\]]*\])"
)
#: Text no published page should show, with what it means.
PROBLEM_TEXT: dict[str, str] = {
    r"\b\w*Warning\b|^WARNING\b|\bWARNING:": "a warning",
    r"Traceback \(most recent call last\)": "a traceback",
    r"IProgress|ipywidgets": "a progress-bar or widget message",
    r"\d+%\|[^\n]*\|": "progress-bar residue",
    r"\bshape: \(\d+, \d+\)": "a polars shape line",
    # every token a dtype, one of them unmistakably one (not a header named "date")
    rf"^(?=[^\n]*(\bstr\b|\b[iuf](8|16|32|64|128)\b|\]))\s*{_DTYPE}(\s+{_DTYPE})*\s*$": (
        "a polars dtype row"
    ),
    r"^\s*md\s+\S": "a markdown cell shown as text (md ...)",
}

PROBE = """<script>
window.addEventListener('load', () => {
  const charts = [...document.images].filter(i => i.src.startsWith('data:image/svg+xml'));
  const empty = [...document.querySelectorAll('.output_subarea, .jp-OutputArea-output')]
    .filter(e => !e.innerText.trim() && !e.querySelector('img, svg, table')).length;
  const out = document.createElement('textarea');
  out.id = 'look-result';
  out.textContent = JSON.stringify({charts: charts.length,
    drawn: charts.filter(i => i.complete && i.naturalWidth > 100).length,
    empty: empty, height: document.documentElement.scrollHeight,
    text: document.body.innerText});
  document.body.appendChild(out);
});
</script></body>"""

OFFLINE = ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
           "--host-resolver-rules=MAP * ~NOTFOUND"]  # fmt: skip


@dataclass
class PageLook:
    problems: list[str] = field(default_factory=list)
    charts: int = 0
    screenshot: Path | None = None

    def as_dict(self, folder: Path) -> dict[str, Any]:
        shot = self.screenshot
        return {"checked": True, "problems": self.problems, "charts": self.charts,
                "screenshot": str(shot.relative_to(folder)) if shot else None}  # fmt: skip


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


#: The page's width in the probe and in the screenshot alike.
WIDTH = 1100


def _run(browser: str, profile: Path, *args: str, timeout: float) -> str:
    """Chromium's stdout; on a timeout its whole process group is killed (renderers too)."""
    process = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", *OFFLINE, f"--user-data-dir={profile}", *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return out


def chart_titles(svg: str) -> dict[str, Any]:
    """A chart's title and axis titles, read from the SVG vl-convert drew."""

    def texts(role: str) -> list[str]:
        found = []
        for group in re.finditer(rf'class="mark-text role-{role}"[^>]*>(.*?)</g>', svg, re.S):
            parts = re.findall(r"<text[^>]*>(.*?)</text>", group.group(1), re.S)
            found += [re.sub(r"<[^>]+>", "", t).strip() for t in parts]
        return [t for t in found if t]

    # Each axis group runs until the next one starts: an axis that shows labels must have
    # a title among its own marks.
    starts = [m.start() for m in re.finditer(r'class="mark-group role-axis"', svg)]
    axes = [svg[a:b] for a, b in zip(starts, [*starts[1:], len(svg)], strict=True)]
    return {
        "title": texts("title-text"),
        "axis_titles": texts("axis-title"),
        "axes": len(axes),
        "untitled_axes": sum(
            1 for axis in axes if "role-axis-label" in axis and "role-axis-title" not in axis
        ),
    }


def _svgs(page: str) -> list[str]:
    return [base64.b64decode(m).decode("utf-8", "replace")
            for m in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)]  # fmt: skip


def look_at(page: Path, screenshot: Path | None = None, *, timeout: float = 120) -> PageLook:
    """Look at ``page`` in headless Chromium; write ``screenshot`` (PNG, the whole page)."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("Chromium is not installed: apt-get install chromium")
    text_of_page = page.read_text()
    look = PageLook()
    with tempfile.TemporaryDirectory(prefix="look-") as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(text_of_page.replace("</body>", PROBE, 1))
        dom = _run(browser, Path(tmp) / "profile", "--virtual-time-budget=5000",
                   f"--window-size={WIDTH},900", "--dump-dom", probe.as_uri(),
                   timeout=timeout)  # fmt: skip
        found = re.search(r'<textarea id="look-result">(.*?)</textarea>', dom, re.S)
        if not found:
            look.problems.append("Chromium did not load the page")
            return look
        result = json.loads(html.unescape(found.group(1)))
        look.charts = result["charts"]
        if result["drawn"] != result["charts"]:
            look.problems.append(f"{result['charts'] - result['drawn']} chart(s) not drawn")
        if result["empty"]:
            look.problems.append(f"{result['empty']} empty output block(s)")
        text = result["text"]
        for pattern, what in PROBLEM_TEXT.items():
            for hit in re.finditer(pattern, text, re.M):
                line = text[text.rfind("\n", 0, hit.start()) + 1 :].split("\n", 1)[0]
                look.problems.append(f"{what}: {line.strip()[:120]!r}")
                break
        for number, svg in enumerate(_svgs(text_of_page), 1):
            titles = chart_titles(svg)
            name = (titles["title"] or [f"chart {number}"])[0]
            if not titles["title"]:
                look.problems.append(f"chart {number} has no title")
            if titles["untitled_axes"]:
                look.problems.append(
                    f"chart {name!r}: {titles['untitled_axes']} axis/axes without a title"
                )
        if screenshot is not None:
            height = min(max(int(result["height"]), 600), 16_000)
            size, target = f"--window-size={WIDTH},{height}", f"--screenshot={screenshot}"
            _run(browser, Path(tmp) / "profile", size, target, page.resolve().as_uri(),
                 timeout=timeout)  # fmt: skip
            if screenshot.is_file():
                look.screenshot = screenshot
            else:
                look.problems.append("Chromium wrote no screenshot")
    return look
