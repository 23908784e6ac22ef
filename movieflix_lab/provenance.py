"""Where a model or report came from: the code's git SHA and the packages' versions."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["describe", "git_sha", "machine", "package_versions"]

_ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def git_sha() -> str | None:
    """The checkout's commit (``+dirty`` when it has uncommitted changes); None outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=_ROOT,
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        return None
    return (sha + ("+dirty" if dirty else "")) if sha else None


def package_versions(*names: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict[str, object]:
    """The machine a measurement was taken on (CPU, cores, memory, OS, Python, git, when)."""
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
    sha = git_sha()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "git_sha": sha[:7] + ("+dirty" if sha.endswith("+dirty") else "") if sha else None,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def describe(m: dict[str, object]) -> str:
    """One line for a report: ``Machine: CPU, N cores, G GB, OS, Python V; git SHA; when.``"""
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}; git {m['git_sha']}; {m['measured_at']}."
    )
