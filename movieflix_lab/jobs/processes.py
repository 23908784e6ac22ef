"""Child processes of the kit: one way to start a stream app or the gateway, and to stop it.

Every job that runs the parts as deployed (the demo, the soak, ``eval fraud``, ``stream
all``, the crash tests) starts them here: ``python -m movieflix_lab ARGS`` in a child
process with an environment built from :class:`~movieflix_lab.config.Settings`, stopped the
way Ctrl-C stops it (uvicorn and Quix shut down cleanly), killed only if it hangs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

from movieflix_lab.config import Settings, child_environment
from movieflix_lab.exceptions import MovieflixError

__all__ = ["gateway_process", "interrupt", "run_together", "spawn", "stream_process"]


def spawn(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    stderr: int | IO[Any] | None = None,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """``python -m movieflix_lab ARGS`` in a child process with environment ``env``."""
    return subprocess.Popen(
        [sys.executable, "-m", "movieflix_lab", *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=dict(env),
        text=text,
    )


def interrupt(process: subprocess.Popen[Any], *, timeout: float) -> None:
    """Stop a child as Ctrl-C would (uvicorn and Quix shut down cleanly); kill if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def stream_process(
    settings: Settings,
    app: str = "analytics",
    *,
    postgres_dsn: str | None = None,
    log: Path | None = None,
    metrics_port: int | None = None,
    **overrides: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """``movieflix-lab stream APP`` in a child process, stopped with Ctrl-C's signal.

    ``overrides`` are settings for the child only (``stream_group_prefix="eval-"``); with
    ``log`` its output goes to that file, else nowhere. Raises when the app exited on its
    own before the block ended. ``metrics_port``: where it serves ``/metrics`` (default: its
    port from the settings, or a free one when that is taken).
    """
    if postgres_dsn:
        overrides["postgres_dsn"] = postgres_dsn
    env = child_environment(settings, **overrides)
    with open(log, "wb") if log is not None else _nowhere() as out:
        ports = [] if metrics_port is None else ["--metrics-port", str(metrics_port)]
        process = spawn(["stream", app, *ports], env, stdout=out,
                        stderr=subprocess.STDOUT if log else None)  # fmt: skip
        try:
            yield process
            if process.poll() is not None:
                where = f"; see {log}" if log else ""
                raise MovieflixError(
                    f"the {app} stream app exited with code {process.returncode}{where}"
                )
        finally:
            interrupt(process, timeout=60)


@contextmanager
def _nowhere() -> Iterator[int]:
    yield subprocess.DEVNULL


@contextmanager
def gateway_process(
    settings: Settings, *, port: int | None = None, workers: int = 1, timeout: float = 60.0
) -> Iterator[str]:
    """``movieflix-lab serve`` in a child process; yields its URL once ``/readyz`` is 200."""
    port = port or settings.gateway_port
    url = f"http://{settings.gateway_host}:{port}"
    try:  # a server already on the port would silently take the traffic
        httpx.get(f"{url}/healthz", timeout=1)
        raise MovieflixError(f"port {port} already answers: stop that server or pick another")
    except httpx.TransportError:
        pass
    args = ["serve", "--port", str(port), "--workers", str(workers)]
    process = spawn(args, child_environment(settings))
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise MovieflixError(
                    f"the gateway exited with code {process.returncode} while starting "
                    f"(is port {port} free? set MOVIEFLIX_GATEWAY_PORT)"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise MovieflixError(f"the gateway at {url} was not ready within {timeout:.0f} s")
            time.sleep(0.3)
        if workers > 1:
            time.sleep(2.0)  # /readyz answered from one worker: let the others finish starting
        yield url
    finally:
        interrupt(process, timeout=30)


def run_together(
    commands: Mapping[str, Sequence[str]], *, say: Callable[[str], None] = lambda _: None
) -> None:
    """Run each command (``movieflix-lab ARGS``) in a process of its own, output shared,
    until all end; Ctrl-C (SIGINT) or SIGTERM stops them all cleanly. Raises naming the ones
    that failed.

    The signals are handled explicitly, not left to Python's ``KeyboardInterrupt``: a process
    started in the background by a shell without job control inherits SIGINT ignored, and
    a stop would then leave the apps running."""
    children = {
        name: subprocess.Popen([sys.executable, "-m", "movieflix_lab", *args])
        for name, args in commands.items()
    }

    def stop(signum: int, frame: object) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGINT)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    say(f"running {', '.join(children)} (Ctrl-C stops them)")
    try:
        codes = {name: child.wait() for name, child in children.items()}
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = {name: code for name, code in codes.items() if code not in (0, -2, 130)}
    if failed:
        raise MovieflixError(f"stream apps failed: {failed}")
