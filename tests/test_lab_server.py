"""``make lab``: the command starts JupyterLab (as root too), prints its URL once, and a
``movieflix-lab`` kernel started through the server's API imports the kit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tornado.websocket import websocket_connect

from movieflix_lab.config import Settings
from movieflix_lab.jobs.jupyter import lab_command, lab_url
from movieflix_lab.reports.kernel import DISPLAY_NAME, KERNEL_NAME, ensure_kernel
from tests.fixtures.kafka import free_port


def _spec(prefix: Path) -> Path:
    return prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"


def test_ensure_kernel_installs_this_python_once(tmp_path: Path) -> None:
    assert ensure_kernel(prefix=tmp_path) == KERNEL_NAME
    spec = json.loads(_spec(tmp_path).read_text())
    assert spec["argv"][0] == sys.executable
    assert spec["display_name"] == DISPLAY_NAME
    written = _spec(tmp_path).stat().st_mtime_ns
    ensure_kernel(prefix=tmp_path)
    assert _spec(tmp_path).stat().st_mtime_ns == written  # already there: left alone

    elsewhere = {**spec, "argv": ["/elsewhere/python", *spec["argv"][1:]]}
    _spec(tmp_path).write_text(json.dumps(elsewhere))
    ensure_kernel(prefix=tmp_path)
    assert json.loads(_spec(tmp_path).read_text())["argv"][0] == sys.executable


def test_lab_command_allows_root_only_as_root() -> None:
    s = Settings()
    as_root = lab_command(s, 8899, root=True)
    as_user = lab_command(s, 8899, root=False)
    assert "--allow-root" in as_root and "--allow-root" not in as_user
    assert as_user[:3] == [sys.executable, "-m", "jupyterlab"]
    for option in ("--ServerApp.ip=127.0.0.1", "--ServerApp.port=8899",
                   "--ServerApp.port_retries=0", "--ServerApp.open_browser=False",
                   f"--ServerApp.root_dir={s.notebooks_dir}",
                   "--MappingKernelManager.default_kernel_name=movieflix-lab"):  # fmt: skip
        assert option in as_user, option
    assert not any("token" in arg.lower() for arg in as_root)  # in the environment only
    assert lab_url("0.0.0.0", 8888, "t") == "http://127.0.0.1:8888/lab?token=t"


def _message(code: str, session: str) -> dict[str, Any]:
    """A Jupyter ``execute_request`` on the shell channel (the server's JSON protocol)."""
    msg_id, date = uuid.uuid4().hex, datetime.now(UTC).isoformat()
    header = dict(msg_id=msg_id, msg_type="execute_request", session=session, username="test",
                  version="5.3", date=date)  # fmt: skip
    content = dict(code=code, silent=False, store_history=False, user_expressions={},
                   allow_stdin=False)  # fmt: skip
    return dict(header=header, parent_header={}, metadata={}, content=content, channel="shell")


async def _execute(ws_url: str, code: str) -> tuple[dict[str, Any], str]:
    """Run ``code`` in the kernel: its execute_reply content and what it printed."""
    session = uuid.uuid4().hex
    ws = await websocket_connect(f"{ws_url}&session_id={session}")
    try:
        request = _message(code, session)
        await ws.write_message(json.dumps(request))
        printed = []
        while True:
            raw = await asyncio.wait_for(ws.read_message(), timeout=60)
            assert raw is not None, "the kernel's websocket closed"
            msg = json.loads(raw)
            if msg["parent_header"].get("msg_id") != request["header"]["msg_id"]:
                continue
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            if msg["msg_type"] == "execute_reply":
                return msg["content"], "".join(printed)
    finally:
        ws.close()


def _wait_for_url(process: subprocess.Popen[bytes], out: Path, port: int) -> str:
    pattern = re.compile(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = pattern.search(out.read_text())
        if found:
            return found.group(1)
        assert process.poll() is None, f"exited with {process.returncode}"
        time.sleep(0.3)
    raise AssertionError("no URL printed within 120 s")


def _stop(process: subprocess.Popen[bytes], runtime: Path) -> None:
    """Ctrl-C's signal; kill it and the server it started if that does not stop them."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for info in runtime.glob("jpserver-*.json"):  # left behind only by a server still up
        with contextlib.suppress(OSError, ValueError, KeyError):
            os.kill(json.loads(info.read_text())["pid"], signal.SIGKILL)


def test_make_lab_serves_the_movieflix_lab_kernel(tmp_path: Path) -> None:
    port = free_port()
    runtime = tmp_path / "runtime"
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"} | {
        "HOME": str(tmp_path / "home"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "COLUMNS": "80",
        "NO_COLOR": "1",
    }
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "movieflix_lab", "lab", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env,
        )  # fmt: skip
    try:
        token = _wait_for_url(process, out, port)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"token {token}"}) as http:
            page = httpx.get(f"{base}/lab?token={token}", timeout=30)
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            specs = http.get("/api/kernelspecs").raise_for_status().json()
            assert specs["default"] == KERNEL_NAME
            assert specs["kernelspecs"][KERNEL_NAME]["spec"]["argv"][0] == sys.executable
            kernel = http.post("/api/kernels", json={"name": KERNEL_NAME}, timeout=60)
            kernel_id = kernel.raise_for_status().json()["id"]
            try:
                ws_url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?token={token}"
                code = "from movieflix_lab import lab; print(lab.__name__)"
                reply, printed = asyncio.run(_execute(ws_url, code))
                assert reply["status"] == "ok", reply
                assert "movieflix_lab.lab" in printed
            finally:
                assert http.delete(f"/api/kernels/{kernel_id}", timeout=60).status_code == 204
    finally:
        _stop(process, runtime)
    assert process.returncode == 0, err.read_text()
    printed = out.read_text() + err.read_text()
    assert printed.count(token) == 1, printed  # the URL, once; Jupyter's banner silenced
    assert "Traceback" not in printed
    assert not list(runtime.glob("jpserver-*.json"))  # the server stopped cleanly
