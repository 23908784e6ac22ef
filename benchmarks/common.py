"""What every benchmark shares: the machine description and writing results."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from movieflix_lab.config import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "reports" / "benchmarks"


def machine() -> dict[str, Any]:
    """The machine a result was measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory_gb = round(kb / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
            text=True, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        sha = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "git_sha": sha or None,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(name: str, results: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """``reports/benchmarks/NAME.json`` and ``NAME.md``: a table of metric, value, anchor."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), **results, "rows": rows}
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    m = payload["machine"]
    lines = [
        f"# Benchmark: {name}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}; git {m['git_sha']}; {m['measured_at']}.",
        "",
        "| metric | value | anchor (same run) | anchor value | ratio | goal |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row.get("ratio")
        lines.append(
            f"| {row['metric']} | {_fmt(row['value'])} {row.get('unit', '')} | "
            f"{row.get('anchor', '-')} | {_fmt(row.get('anchor_value'))} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | {row.get('goal', '-')} |"
        )
    notes = results.get("notes")
    if notes:
        lines += ["", *notes]
    (RESULTS_DIR / f"{name}.md").write_text("\n".join(lines) + "\n")
    return RESULTS_DIR / f"{name}.md"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
