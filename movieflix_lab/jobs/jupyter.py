"""``movieflix-lab lab``: JupyterLab on the notebooks folder, the ``movieflix-lab`` kernel
the default, for anyone who runs it.

Bound to 127.0.0.1 unless told otherwise, behind a token (``JUPYTER_TOKEN``, else a new
one); as root ``--allow-root`` is passed, on purpose and only then. Jupyter's own log is kept
to warnings, so the one URL printed (with its token) is the caller's, once the server
answers. Ctrl-C, SIGTERM or SIGHUP stop the server the way Jupyter stops cleanly (SIGTERM:
its kernels shut down), killed only if it hangs.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from movieflix_lab.config import Settings, child_environment
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.reports.kernel import KERNEL_NAME, ensure_kernel

__all__ = ["lab_command", "lab_url", "run_lab"]

_WILDCARDS = ("", "0.0.0.0", "::")


def lab_command(
    settings: Settings, port: int, *, ip: str = "127.0.0.1", browser: bool = False,
    root: bool = False,
) -> list[str]:  # fmt: skip
    """The JupyterLab command line. Its token goes in the environment (``JUPYTER_TOKEN``),
    never here: every user of the machine can read a process's command line."""
    command = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.open_browser={browser}",
        f"--ServerApp.root_dir={settings.notebooks_dir}",
        f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
        "--Application.log_level=WARN",  # the server's and the LabApp's
    ]  # fmt: skip
    if root:
        command.append("--allow-root")
    return command


def lab_url(ip: str, port: int, token: str = "", path: str = "/lab") -> str:
    """The address to open: ``http://127.0.0.1:8888/lab?token=...``."""
    host = "127.0.0.1" if ip in _WILDCARDS else f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}{path}" + (f"?token={token}" if token else "")


def _free_port(ip: str, port: int) -> int:
    """``port`` if nothing listens on it, a free one for 0; else a one-line error."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Jupyter binds it
        try:
            sock.bind((ip, port))
        except OSError as exc:
            raise MovieflixError(
                f"cannot listen on {ip}:{port} ({exc.strerror}): another JupyterLab? "
                "Pass --port N (make lab LAB_ARGS='--port N'), or --port 0 for a free one"
            ) from None
        return int(sock.getsockname()[1])


def _stop(*_: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """Ctrl-C (even where a shell started this with SIGINT ignored), SIGTERM and SIGHUP
    (unless ignored, as under nohup) end the wait, so the server is stopped too."""
    signals = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signals.append(signal.SIGHUP)
    previous = {sig: signal.signal(sig, _stop) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise MovieflixError(
                f"JupyterLab exited with code {process.returncode} before it answered "
                "(its messages are above)"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise MovieflixError(f"JupyterLab did not answer at {url} within {timeout:.0f} s")
        time.sleep(0.3)


def run_lab(
    settings: Settings,
    *,
    port: int = 8888,
    ip: str = "127.0.0.1",
    browser: bool = False,
    on_ready: Callable[[str], None] = lambda _: None,
    timeout: float = 120,
) -> int:
    """Run JupyterLab until it exits or is stopped (Ctrl-C); ``on_ready(url)`` once it
    answers. Returns its exit code (0 when stopped)."""
    ensure_kernel()
    given = settings.jupyter_token
    token = given.get_secret_value() if given else secrets.token_hex(24)
    port = _free_port(ip, port)
    command = lab_command(settings, port, ip=ip, browser=browser, root=os.geteuid() == 0)
    # A session of its own: Ctrl-C in the terminal reaches this process only, which stops
    # the server with SIGTERM (Jupyter's SIGINT handler would ask "Shut down?" first).
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        env=child_environment(settings) | {"JUPYTER_TOKEN": token},
        start_new_session=True,
    )
    try:
        with _stopped_by_signals():
            try:
                _wait_until_ready(process, lab_url(ip, port, path="/api"), timeout)
                on_ready(lab_url(ip, port, token))
                return process.wait()
            except KeyboardInterrupt:
                return 0
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):  # hung, or Ctrl-C twice
                process.kill()
                process.wait()
