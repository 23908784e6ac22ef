"""``movieflix-lab report`` and ``schedule``: notebooks run as reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from movieflix_lab.cli.app import (
    app,
    console,
    settings,
)
from movieflix_lab.exceptions import MovieflixError

# --- reports --------------------------------------------------------------------------


def _pairs(args: list[str]) -> dict[str, str]:
    """``-p KEY VALUE`` pairs (Typer has no two-value repeatable option)."""
    given: dict[str, str] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            raise typer.BadParameter(
                f"expected -p KEY VALUE, got {' '.join([flag, *rest[:2]])!r}", param_hint="-p"
            )
        key, value = rest.pop(0), rest.pop(0)
        given[key] = value
    return given


@app.command("report", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def report(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(help="The report (notebook) to run, then -p KEY VALUE per parameter."),
    ] = None,
    show_input: Annotated[
        bool, typer.Option("--show-input", help="Keep the code cells in the HTML report.")
    ] = False,
    rerun: Annotated[
        Path | None,
        typer.Option(
            "--rerun",
            help="A run's manifest.json: run it again, same parameters, "
            "topics pinned to the offsets it read.",
        ),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the reports and their parameters.")
    ] = False,
) -> None:
    """Run a notebook with papermill into reports/NAME/<run>/ (notebook, HTML, manifest)."""
    from movieflix_lab.reports import list_notebooks, notebook_parameters, run_report
    from movieflix_lab.reports import rerun as rerun_report

    s = settings()
    if list_ or (name is None and rerun is None):
        for report_name, path in list_notebooks(s).items():
            params = ", ".join(f"{p.name}: {p.type} = {p.default!r}"
                               for p in notebook_parameters(path).values())  # fmt: skip
            console.print(f"[bold]{report_name}[/] ({path.name}): {params}")
        return
    with console.status(f"running {name or rerun} with papermill…"):
        if rerun is not None:
            run = rerun_report(s, rerun, hide_input=not show_input)
        else:
            assert name is not None
            given: dict[str, Any] = _pairs(ctx.args)
            run = run_report(s, name, given, hide_input=not show_input)
    mark = "[green]succeeded[/]" if run.status == "succeeded" else "[red]failed[/]"
    console.print(f"{run.name}: {mark} in {run.manifest['duration_s']:.1f} s → {run.folder}")
    if run.manifest.get("key_numbers"):
        console.print(f"key numbers: {run.manifest['key_numbers']}")
    console.print(f"index: {s.reports_dir / 'index.html'}")
    if run.status != "succeeded":
        raise MovieflixError(f"report {run.name} failed: {run.manifest['error']} "
                             f"(partial notebook kept in {run.folder})")  # fmt: skip


@app.command("schedule")
def schedule(
    once: Annotated[
        bool, typer.Option("--once", help="Run every report that is due now, then exit.")
    ] = False,
    file: Annotated[
        Path | None, typer.Option(help="The schedule (default reports/schedule.toml).")
    ] = None,
) -> None:
    """Run reports on the cron schedules of reports/schedule.toml (APScheduler)."""
    from movieflix_lab.reports.schedule import load_schedule, run_due, serve

    s = settings()
    if once:

        def said(report: Any, run: Any) -> None:
            state = "could not run" if run is None else run.status
            console.print(f"{report.name} ({report.cron}): {state}")

        done = run_due(s, file, on_run=said)
        failed = [r.name for r, run in done if run is None or run.status != "succeeded"]
        console.print(f"{len(done)} due report(s) run, {len(failed)} failed")
        if failed:
            raise MovieflixError(f"failed: {', '.join(failed)} (the others ran)")
        return
    reports = load_schedule(s, file)
    console.print(f"scheduling {len(reports)} report(s) (UTC); Ctrl-C stops")
    serve(s, file)
