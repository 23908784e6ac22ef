"""``movieflix-lab schedule``: reports on cron schedules from ``reports/schedule.toml``.

::

    [[report]]
    name = "explore-windows"
    cron = "0 6 * * *"            # minute hour day month weekday (UTC)
    parameters = { window_minutes = 30 }

``schedule`` runs them with APScheduler until Ctrl-C; ``schedule --once`` runs every report
that is due — never run, or not run since its latest scheduled time — and exits (for cron
or CI). One failing report never stops the others. The file is checked whole before
anything runs: unknown reports, bad cron expressions and bad parameters are named.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from movieflix_lab.config import Settings
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.reports.index import list_runs
from movieflix_lab.reports.params import coerce, notebook_parameters
from movieflix_lab.reports.runner import ReportRun, find_notebook, run_report

__all__ = ["ScheduledReport", "due", "load_schedule", "run_due", "serve"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledReport:
    name: str
    cron: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(self.cron, timezone=UTC)


def load_schedule(settings: Settings, path: Path | None = None) -> list[ScheduledReport]:
    path = path or settings.reports_dir / "schedule.toml"
    if not path.is_file():
        raise MovieflixError(
            f"no schedule at {path}: write one (see `movieflix-lab schedule --help`)"
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise MovieflixError(f"{path}: {exc}") from None
    entries = data.get("report", [])
    if not isinstance(entries, list) or not entries:
        raise MovieflixError(f"{path}: no [[report]] entries")
    reports, problems = [], []
    for i, entry in enumerate(entries, 1):
        where = f"{path.name} report #{i}"
        try:
            name, cron = entry["name"], entry["cron"]
            scheduled = ScheduledReport(name, cron, dict(entry.get("parameters", {})))
            scheduled.trigger()
            _, notebook = find_notebook(settings, name)
            coerce(notebook_parameters(notebook), scheduled.parameters, notebook.name)
            reports.append(scheduled)
        except KeyError as exc:
            problems.append(f"{where}: missing {exc}")
        except ValueError as exc:
            problems.append(f"{where}: cron {entry.get('cron')!r}: {exc}")
        except MovieflixError as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        raise MovieflixError("; ".join(problems))
    return reports


def _last_run(settings: Settings, name: str) -> datetime | None:
    for run in list_runs(settings.reports_dir):
        if run.get("name") == name and run.get("scheduled"):
            return datetime.fromisoformat(run["started_at"])
    return None


def due(settings: Settings, report: ScheduledReport, now: datetime) -> bool:
    """Never run on schedule, or a scheduled time has passed since its last scheduled run."""
    last = _last_run(settings, report.name)
    if last is None:
        return True
    following = report.trigger().get_next_fire_time(None, last + timedelta(seconds=1))
    return following is not None and following <= now


def _run_one(settings: Settings, report: ScheduledReport) -> ReportRun | None:
    try:
        run = run_report(settings, report.name, report.parameters)
    except Exception as exc:  # one report's failure never stops the others
        logger.error("report %s could not run: %s", report.name, exc)
        return None
    _mark_scheduled(run)
    return run


def _mark_scheduled(run: ReportRun) -> None:
    import json

    manifest = run.folder / "manifest.json"
    data = json.loads(manifest.read_text())
    data["scheduled"] = True
    manifest.write_text(json.dumps(data, indent=2, default=str) + "\n")


def run_due(
    settings: Settings,
    path: Path | None = None,
    *,
    now: datetime | None = None,
    on_run: Callable[[ScheduledReport, ReportRun | None], None] | None = None,
) -> list[tuple[ScheduledReport, ReportRun | None]]:
    """``--once``: run every due report (one after another); returns what ran."""
    now = now or datetime.now(UTC)
    done = []
    for report in load_schedule(settings, path):
        if due(settings, report, now):
            run = _run_one(settings, report)
            done.append((report, run))
            if on_run:
                on_run(report, run)
    return done


def serve(settings: Settings, path: Path | None = None) -> None:
    """Run the schedule until Ctrl-C (APScheduler's blocking scheduler, UTC)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone=UTC)
    for report in load_schedule(settings, path):
        scheduler.add_job(_run_one, report.trigger(), args=(settings, report),
                          id=report.name, max_instances=1, coalesce=True,
                          misfire_grace_time=3600)  # fmt: skip
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=False)
