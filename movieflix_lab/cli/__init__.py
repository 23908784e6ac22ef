"""The ``movieflix-lab`` command: thin over the library, one-line errors unless ``--debug``.

One module per command group; each parses its options, calls one library function and
renders its typed result (:mod:`movieflix_lab.cli.render`).
"""

from __future__ import annotations

import signal
from typing import Any

from movieflix_lab.cli import (
    broker,
    demo,
    jupyter,
    kafka_tool,
    models,
    reports,
    simulate,
    stream,
    topics,
)
from movieflix_lab.cli.app import app, cli_options, err_console
from movieflix_lab.exceptions import MovieflixError

__all__ = ["app", "main"]
#: Each module registers its commands on import.
_COMMANDS = (broker, demo, jupyter, kafka_tool, models, reports, simulate, stream, topics)


def _stop_on_termination() -> None:
    """SIGTERM (``kill``, a process manager) and SIGHUP (the terminal closed) stop a command
    as Ctrl-C does, through its cleanup. Python's default for both is to die on the spot:
    a demo stopped so left its broker, stream apps, gateway and PostgreSQL running. A
    signal the parent chose to ignore (``nohup``) stays ignored; commands that handle the
    signals themselves (the stream apps, ``serve``) still do."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, interrupt)


def main() -> None:
    """Run the CLI: errors become one line on stderr and exit code 1 unless ``--debug``."""
    _stop_on_termination()
    try:
        app(prog_name="movieflix-lab")
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        raise SystemExit(130) from None
    except Exception as exc:
        if cli_options["debug"]:
            raise
        if isinstance(exc, MovieflixError):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
