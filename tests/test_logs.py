"""librdkafka's lines go through logging: what it retries on its own stays out of a
terminal, what fails shows as one formatted line, never as librdkafka's bare output."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from rich.console import Console

from movieflix_lab.logs import LIBRDKAFKA_LOGGER, configure_logging


def test_retried_conditions_are_debug_and_failures_stay_warnings() -> None:
    out = io.StringIO()
    configure_logging(console=Console(file=out, width=200))  # the CLI sets its own back
    log = logging.getLogger(LIBRDKAFKA_LOGGER)
    log.warning("%s [%s] %s", "GETPID", "rdkafka#producer-1",
                "[thrd:main]: Failed to acquire idempotence PID from broker 1: "
                "Broker: Coordinator load in progress: retrying")  # fmt: skip
    log.error("%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect to 127.0.0.1:1 failed")
    text = out.getvalue()
    assert "GETPID" not in text
    assert "FAIL [rdkafka#producer-1] Connect to 127.0.0.1:1 failed" in text
    assert "movieflix_lab.kafka.librdkafka" in text


def test_a_client_that_cannot_connect_prints_no_bare_librdkafka_line() -> None:
    """A real producer against a closed port, in a process configured as the CLI is."""
    code = (
        "from movieflix_lab.logs import configure_logging; configure_logging();"
        "from movieflix_lab.config import Settings;"
        "from movieflix_lab.kafka.client import producer;"
        "p = producer(Settings(kafka_bootstrap='127.0.0.1:1')); p.produce('t', b'x'); p.poll(2)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines, "the failed connection is reported"
    assert all(not line.startswith(("%", "FAIL [")) for line in lines), run.stderr
    assert "movieflix_lab.kafka.librdkafka: FAIL" in run.stderr.replace("\n", " "), run.stderr
