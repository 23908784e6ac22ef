"""Reports: every notebook through papermill, manifests that re-run to the same numbers,
refused parameters, failed runs, the schedule, and the HTML as Chromium draws it offline."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from movieflix_lab.config import Settings
from movieflix_lab.events import WatchRecord
from movieflix_lab.kafka.catalog import create_topics
from movieflix_lab.kafka.event_writer import EventWriter
from movieflix_lab.reports import ParameterError, rerun, run_report
from movieflix_lab.reports.index import list_runs
from movieflix_lab.reports.schedule import run_due
from movieflix_lab.simulate import KafkaSink, SimulationConfig, run_simulation
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.kafka import with_settings

#: Within the topics' 7-day retention, and apart from the other tests' evenings.
TOPIC_START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
SMALL = {
    "explore-windows": {"users": "150", "minutes": "120"},
    "fraud-review": {"users": "300", "minutes": "120"},
    "recsys-eval": {"users": "250", "days": "7", "tune": "false"},
}


#: The charts each report draws at least (pipeline-health's need traffic on the cluster, which
#: this module's may not have yet; the demo checks them on its own traffic).
CHARTS = {"explore-windows": 4, "fraud-review": 2, "recsys-eval": 2, "pipeline-health": 0}


def assert_looks_published(folder: Path, manifest: dict[str, Any]) -> None:
    """Chromium drew the page, every chart on it, with nothing a published page should not
    show, and its screenshot is beside it, linked from the index."""
    page = manifest["page"]
    assert page["checked"] and page["problems"] == [], page
    assert page["charts"] >= CHARTS[manifest["name"]], page
    shot = folder / "report.png"
    assert page["screenshot"] == "report.png" and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", shot.read_bytes()[16:24])
    assert width == 1100 and height > 600  # the whole page, not the first screen
    index = (folder.parent.parent / "index.html").read_text()
    assert f"{folder.parent.name}/{folder.name}/report.png" in index


@pytest.fixture
def reports(kafka: Settings, tmp_path: Path) -> Settings:
    return with_settings(kafka, reports_dir=tmp_path / "reports", data_dir=tmp_path / "data")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_each_simulated_notebook_runs_and_reruns_to_the_same_numbers(
    reports: Settings, name: str
) -> None:
    run = run_report(reports, name, SMALL[name])
    assert run.status == "succeeded", run.manifest["error"]
    manifest = run.manifest
    assert (run.folder / "notebook.ipynb").is_file() and (run.folder / "report.html").is_file()
    assert manifest["git_sha"] and manifest["packages"]["papermill"]
    assert manifest["reads"]["simulations"], "the seed is recorded"
    assert manifest["key_numbers"]
    assert manifest["parameters"]["users"] == int(SMALL[name]["users"])  # typed, not a string
    assert manifest["kernel"] == "movieflix-lab"
    assert_looks_published(run.folder, manifest)
    again = rerun(reports, run.folder / "manifest.json")
    assert again.status == "succeeded" and again.manifest["rerun_of"] == manifest["run_id"]
    assert again.manifest["key_numbers"] == manifest["key_numbers"]
    index = (reports.reports_dir / "index.html").read_text()
    assert f"{name}/{manifest['run_id']}/report.html" in index


def test_explore_windows_from_a_topic_reruns_pinned_to_the_same_offsets(reports: Settings) -> None:
    create_topics(reports)
    config = SimulationConfig(seed=5, users=150, minutes=90, activity=6, incident_rates={},
                              start=TOPIC_START)  # fmt: skip
    run_simulation(config, KafkaSink(reports))
    window = {"source": "topic", "start": TOPIC_START.isoformat(),
              "end": (TOPIC_START + timedelta(minutes=90)).isoformat()}  # fmt: skip
    first = run_report(reports, "explore-windows", window)
    assert first.status == "succeeded", first.manifest["error"]
    read = {r["topic"]: r for r in first.manifest["reads"]["topics"]}
    assert set(read) == {"watch-history", "search-events"}
    numbers = first.manifest["key_numbers"]
    read_count = sum(b - a for a, b in read["watch-history"]["partitions"].values())
    assert read_count >= numbers["viewings"] > 0
    # Ten more viewings land in the same time range afterwards.
    at = TOPIC_START + timedelta(minutes=30)
    late = [
        WatchRecord(event_id=uuid.uuid4(), user_id=f"extra{i}", timestamp=at, movie_id="m00001",
                    genre="drama", session_id="s", device_id="tv-x", started_at=TOPIC_START,
                    seconds_watched=1800, movie_duration_s=3600, completion_ratio=0.5)
        for i in range(10)
    ]  # fmt: skip
    with EventWriter(reports) as writer:
        for record in late:
            writer.send(record)
    fresh = run_report(reports, "explore-windows", window)
    assert (
        fresh.manifest["key_numbers"]["viewings"] == first.manifest["key_numbers"]["viewings"] + 10
    )
    again = rerun(reports, first.folder / "manifest.json")
    assert again.manifest["key_numbers"] == first.manifest["key_numbers"]
    assert json.loads((again.folder / "pins.json").read_text())["watch-history"]


def test_pipeline_health_reads_the_cluster(reports: Settings) -> None:
    create_topics(reports)
    run = run_report(reports, "pipeline-health", {"samples": "2", "interval_s": "0.2",
                                                    "max_records": "20000"})  # fmt: skip
    assert run.status == "succeeded", run.manifest["error"]
    assert_looks_published(run.folder, run.manifest)
    numbers = run.manifest["key_numbers"]
    assert {"records", "late_events", "dead_letters", "final_lag", "status"} <= set(numbers)
    assert {r["topic"] for r in run.manifest["reads"]["topics"]} >= {
        "dead-letters",
        "watch-history",
    }


def test_bad_parameters_are_refused_before_anything_runs(reports: Settings) -> None:
    with pytest.raises(
        ParameterError, match=r"unknown parameter\(s\) colour; known: source \(str\)"
    ):
        run_report(reports, "explore-windows", {"colour": "red"})
    with pytest.raises(
        ParameterError, match=r"users must be int, not 'many'; minutes must be float"
    ):
        run_report(reports, "explore-windows", {"users": "many", "minutes": "soon"})
    assert not (reports.reports_dir / "explore-windows").exists()  # nothing ran
    done = run_cli("report", "recsys-eval", "-p", "tune", "perhaps", env=cli_env(reports))
    assert done.returncode == 1 and "tune must be bool, not 'perhaps'" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_cli("report", "nope", env=cli_env(reports))
    assert done.returncode == 1 and "no report 'nope'; known: explore-windows" in done.stderr


def test_a_failed_run_keeps_its_partial_notebook_and_is_marked_failed(reports: Settings) -> None:
    run = run_report(reports, "explore-windows", {"source": "bogus"})
    assert (
        run.status == "failed" and "source must be 'simulate' or 'topic'" in run.manifest["error"]
    )
    notebook = json.loads((run.folder / "notebook.ipynb").read_text())
    assert any(c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code")
    index = (reports.reports_dir / "index.html").read_text()
    assert re.search(r'class="status-failed">failed<', index)
    assert list_runs(reports.reports_dir)[0]["status"] == "failed"


def test_schedule_once_runs_what_is_due_and_survives_a_failure(reports: Settings) -> None:
    reports.reports_dir.mkdir(parents=True, exist_ok=True)
    (reports.reports_dir / "schedule.toml").write_text(
        '[[report]]\nname = "explore-windows"\ncron = "0 6 * * *"\n'
        'parameters = { source = "bogus" }\n\n'
        '[[report]]\nname = "recsys-eval"\ncron = "*/15 * * * *"\n'
        "parameters = { users = 200, days = 5.0, tune = false }\n"
    )
    done = run_due(reports)
    assert [(r.name, run.status if run else None) for r, run in done] == [
        ("explore-windows", "failed"), ("recsys-eval", "succeeded")]  # fmt: skip
    assert run_due(reports) == []  # nothing is due again until the next scheduled time
    later = datetime.now(UTC) + timedelta(minutes=16)
    assert [r.name for r, _ in run_due(reports, now=later)] == ["recsys-eval"]
    (reports.reports_dir / "bad.toml").write_text(
        '[[report]]\nname = "nope"\ncron = "61 * * * *"\n'
    )
    done_cli = run_cli("schedule", "--once", "--file", str(reports.reports_dir / "bad.toml"),
                       env=cli_env(reports))  # fmt: skip
    assert done_cli.returncode == 1 and "bad.toml report #1: cron '61 * * * *'" in done_cli.stderr


def test_reports_render_offline_in_chromium(reports: Settings, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is not installed: `make test` installs Debian's chromium"
    run = run_report(reports, "explore-windows", SMALL["explore-windows"])
    page = (run.folder / "report.html").read_text()
    # Nothing to fetch: no script, stylesheet or image from anywhere but the page itself.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.replace(
            "</body>",
            """<script>
window.addEventListener('load', () => {
  const charts = [...document.images].filter(i => i.src.startsWith('data:image/svg+xml'));
  document.body.dataset.charts = charts.length;
  document.body.dataset.drawn = charts.filter(i => i.complete && i.naturalWidth > 100).length;
});
</script></body>""",
        )
    )
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    charts = re.search(r'data-charts="(\d+)"', dom)
    drawn = re.search(r'data-drawn="(\d+)"', dom)
    assert charts and drawn, dom[:500]
    assert int(charts.group(1)) >= 4 and drawn.group(1) == charts.group(1)


def test_the_shipped_schedule_is_valid(reports: Settings) -> None:
    from movieflix_lab.config import PROJECT_ROOT
    from movieflix_lab.reports.schedule import load_schedule

    shipped = load_schedule(reports, PROJECT_ROOT / "reports" / "schedule.toml")
    assert {r.name for r in shipped} == {"explore-windows", "fraud-review", "recsys-eval",
                                         "pipeline-health"}  # fmt: skip
