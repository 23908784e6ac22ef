"""``movieflix-lab report NAME``: a notebook run with papermill into ``reports/NAME/<run>/``.

Each run writes the executed ``notebook.ipynb`` (kept even when a cell fails: papermill
saves after every cell), ``report.html`` (self-contained; inputs hidden by default), its
screenshot ``report.png`` as headless Chromium draws it (:mod:`~movieflix_lab.reports.look`;
what a reader would see that a published page should not show is listed in the manifest
under ``page``) and ``manifest.json``: the parameters, what the notebook read (topics with
the exact offsets and the time range asked for, Parquet files, model versions, simulation
seeds), its key numbers, git SHA, package versions, duration and status: enough to run it
again to the same numbers (:func:`rerun` pins the topic offsets read).
``reports/index.html`` lists every run.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from movieflix_lab.config import Settings, environment_overlay, settings_environment
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.lab.session import PINS_ENV, PROGRESS_ENV, RECORD_ENV
from movieflix_lab.provenance import git_sha, package_versions
from movieflix_lab.reports.html import render_html
from movieflix_lab.reports.index import write_index
from movieflix_lab.reports.kernel import LocalKernelManager, ensure_kernel
from movieflix_lab.reports.look import chromium, look_at
from movieflix_lab.reports.params import coerce, notebook_parameters

__all__ = ["ReportRun", "find_notebook", "list_notebooks", "rerun", "run_report"]

PACKAGES = ("movieflix-lab", "papermill", "altair", "vl-convert-python", "polars", "pandas",
            "quixstreams", "river", "implicit", "confluent-kafka")  # fmt: skip


@dataclass(frozen=True)
class ReportRun:
    name: str
    folder: Path
    status: str
    manifest: dict[str, Any]


def list_notebooks(settings: Settings) -> dict[str, Path]:
    """Report name (the file name without its number) → notebook."""
    found = {}
    for path in sorted(settings.notebooks_dir.glob("*.ipynb")):
        stem = path.stem
        name = stem.split("-", 1)[1] if stem[:2].isdigit() and "-" in stem else stem
        found[name] = path
    return found


def find_notebook(settings: Settings, name: str) -> tuple[str, Path]:
    notebooks = list_notebooks(settings)
    for report, path in notebooks.items():
        if name in (report, path.stem, path.name):
            return report, path
    raise MovieflixError(f"no report {name!r}; known: {', '.join(notebooks) or 'none'}")


def _reads(record_file: Path) -> dict[str, Any]:
    entries = []
    if record_file.is_file():
        entries = [json.loads(line) for line in record_file.read_text().splitlines() if line]
    key_numbers: dict[str, Any] = {}
    for entry in entries:
        if entry["kind"] == "key_numbers":
            key_numbers.update(entry["values"])
    return {
        "topics": [e for e in entries if e["kind"] == "topic"],
        "parquet": [e for e in entries if e["kind"] == "parquet"],
        "models": [e for e in entries if e["kind"] == "model"],
        "simulations": [e for e in entries if e["kind"] == "simulation"],
        "data": [e for e in entries if e["kind"] == "data"],
        "key_numbers": key_numbers,
    }


def run_report(
    settings: Settings,
    name: str,
    given: dict[str, Any] | None = None,
    *,
    pins: dict[str, dict[str, list[int]]] | None = None,
    hide_input: bool = True,
    rerun_of: str | None = None,
) -> ReportRun:
    """Run report ``name`` with ``given`` parameters; unknown or ill-typed parameters are
    refused (:class:`~movieflix_lab.reports.params.ParameterError`) before anything runs."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    report, notebook = find_notebook(settings, name)
    parameters = coerce(notebook_parameters(notebook), given or {}, notebook.name)
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%S") + f"{started.microsecond // 1000:03d}Z"
    folder = settings.reports_dir / report / run_id
    folder.mkdir(parents=True, exist_ok=False)
    record_file = folder / ".reads.jsonl"
    # Progress bars mean nothing in a published page: off in the kernel (tqdm's, the kit's).
    env = {**settings_environment(settings), RECORD_ENV: str(record_file), "TQDM_DISABLE": "1",
           PROGRESS_ENV: "0"}  # fmt: skip
    if pins:
        (folder / "pins.json").write_text(json.dumps(pins, indent=2))
        env[PINS_ENV] = str(folder / "pins.json")
    status, error = "succeeded", None
    clock = time.monotonic()
    output = folder / "notebook.ipynb"
    kernel = ensure_kernel()
    with environment_overlay(env):
        try:
            papermill.execute_notebook(
                str(notebook), str(output), parameters=parameters, kernel_name=kernel,
                progress_bar=False, cwd=str(settings.notebooks_dir),
                request_save_on_cell_execute=True, log_output=False,
                **({"kernel_manager_class": LocalKernelManager} if LocalKernelManager else {}),
            )  # fmt: skip
        except PapermillExecutionError as exc:
            status, error = "failed", f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
        except Exception as exc:  # the kernel died, a timeout: still a failed run, recorded
            status, error = "failed", f"{type(exc).__name__}: {exc}"
    reads = _reads(record_file)
    record_file.unlink(missing_ok=True)
    manifest = {
        "name": report,
        "notebook": str(notebook.relative_to(settings.notebooks_dir.parent))
        if notebook.is_relative_to(settings.notebooks_dir.parent) else str(notebook),
        "run_id": run_id,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - clock, 2),
        "status": status,
        "error": error,
        "parameters": parameters,
        "kernel": kernel,
        "reads": {k: v for k, v in reads.items() if k != "key_numbers"},
        "key_numbers": reads["key_numbers"],
        "kafka": settings.bootstrap_servers,
        "git_sha": git_sha(),
        "packages": package_versions(*PACKAGES),
        "rerun_of": rerun_of,
        "outputs": {"notebook": "notebook.ipynb", "html": "report.html", "screenshot": None},
    }  # fmt: skip
    page = folder / "report.html"
    if output.is_file():
        try:
            page.write_text(render_html(output, manifest, hide_input=hide_input))
        except Exception as exc:  # the notebook is there; say why the page is not
            manifest["outputs"]["html"] = None
            manifest["html_error"] = f"{type(exc).__name__}: {exc}"
    manifest["page"] = _look(page, folder)
    manifest["outputs"]["screenshot"] = manifest["page"].get("screenshot")
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    write_index(settings.reports_dir)
    return ReportRun(report, folder, status, manifest)


def _look(page: Path, folder: Path) -> dict[str, Any]:
    """The page as Chromium draws it: its screenshot and what a reader should not see."""
    if not page.is_file():
        return {"checked": False, "why": "no page was written"}
    if chromium() is None:
        return {"checked": False, "why": "Chromium is not installed (apt-get install chromium)"}
    try:
        return look_at(page, folder / "report.png").as_dict(folder)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return {"checked": False, "why": f"Chromium failed: {type(exc).__name__}: {exc}"}


def rerun(settings: Settings, manifest_path: Path, *, hide_input: bool = True) -> ReportRun:
    """Run a report again from its manifest: the same parameters, and the topics pinned to
    the offsets the first run read."""
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise MovieflixError(f"cannot read manifest {manifest_path}: {exc}") from None
    pins = {read["topic"]: read["partitions"] for read in manifest["reads"].get("topics", [])}
    return run_report(settings, manifest["name"], manifest["parameters"], pins=pins or None,
                      hide_input=hide_input, rerun_of=manifest["run_id"])  # fmt: skip
