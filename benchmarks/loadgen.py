"""A compiled load generator for the HTTP benchmarks: vegeta, installed by the benchmark.

A Python load generator (aiohttp, httpx) spends about as much CPU per request as the
gateway it loads, on the same 2 cores, so a benchmark measured the generator as much as the
gateway. `vegeta <https://github.com/tsenart/vegeta>`_ (Go) costs a fraction of that. It is
built from the Go module proxy on first use into ``.bench/bin/`` (``go install``, about
20 s), and each run reports its own CPU time (``os.wait4`` of the attack process), so every
table can say what the traffic cost. Without Go the benchmarks fall back to their Python
generator and say so in their notes.

    python -m benchmarks.loadgen          # install (or find) vegeta and print its path
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from movieflix_lab.config import PROJECT_ROOT

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.12.0"
BIN_DIR = PROJECT_ROOT / ".bench" / "bin"


def vegeta(install: bool = True) -> Path | None:
    """The vegeta binary: ``.bench/bin/vegeta``, installed with ``go install`` if missing;
    None when it is missing and Go is not on the machine (or ``install`` is False)."""
    binary = BIN_DIR / "vegeta"
    if binary.exists():
        return binary
    if not install or shutil.which("go") is None:
        return None
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(BIN_DIR), "GOFLAGS": "-mod=mod"}
    result = subprocess.run(["go", "install", f"{VEGETA_MODULE}@{VEGETA_VERSION}"], env=env,
                            capture_output=True, text=True, check=False, timeout=600)  # fmt: skip
    if result.returncode != 0 or not binary.exists():
        print(f"could not build vegeta ({result.stderr.strip()[-300:]}): falling back to Python")
        return None
    return binary


@dataclass
class Attack:
    """What one vegeta attack measured, and what it cost."""

    requests: int
    seconds: float
    status_codes: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    #: CPU seconds the load generator itself used (user + system).
    cpu_s: float
    #: The request number of each answer and its status (``by_request=True``).
    statuses: list[int] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.status_codes.get("200", 0)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cores(self) -> float:
        return self.cpu_s / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        return self.requests - self.ok


def targets_file(url: str, bodies: Iterable[bytes], headers: Mapping[str, str],
                 folder: Path) -> Path:  # fmt: skip
    """vegeta's JSON targets, one POST per body, in order."""
    path = folder / "targets.jsonl"
    header = {name: [value] for name, value in headers.items()}
    with path.open("w") as out:
        for body in bodies:
            out.write(json.dumps({"method": "POST", "url": url, "header": header,
                                  "body": base64.b64encode(body).decode()}) + "\n")  # fmt: skip
    return path


class Vegeta:
    """``vegeta attack`` over prepared bodies, started and waited for in the background.

    ``rate`` requests/s (open loop: vegeta adds workers to keep the schedule), or ``rate=0``
    for a closed loop of ``workers`` clients as fast as the server answers.
    """

    def __init__(self, binary: Path, url: str, bodies: Iterable[bytes], *, rate: float,
                 seconds: float, workers: int = 8, headers: Mapping[str, str] | None = None,
                 connections: int = 64) -> None:  # fmt: skip
        self.binary, self.seconds = binary, seconds
        self.folder = Path(tempfile.mkdtemp(prefix="movieflix-vegeta-"))
        targets = targets_file(url, bodies, headers or {"content-type": "application/json"},
                               self.folder)  # fmt: skip
        self.results = self.folder / "results.bin"
        rate_arg = "0" if rate <= 0 else f"{round(rate * 100)}/100s"  # integers only
        self.command = [
            str(binary), "attack", "-format=json", f"-targets={targets}", f"-rate={rate_arg}",
            f"-duration={seconds:.3f}s", f"-workers={workers}", "-http2=false",
            f"-max-connections={connections}", f"-output={self.results}", "-timeout=30s",
        ]  # fmt: skip
        if rate <= 0:
            self.command.append(f"-max-workers={workers}")
        self._process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> Vegeta:
        self.started = time.monotonic()
        self._process = subprocess.Popen(self.command, stderr=subprocess.PIPE)
        return self

    def stop(self) -> None:
        """Interrupt the attack early (vegeta writes what it has)."""
        if self._process is not None and self._process.returncode is None:
            # Not poll(): it would reap the process, and wait() reads its CPU from wait4.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGINT)

    def wait(self, by_request: bool = False) -> Attack:
        """Wait for the attack to end; its report (and, ``by_request``, every status)."""
        assert self._process is not None, "start() first"
        _, status, usage = os.wait4(self._process.pid, 0)
        self._process.returncode = os.waitstatus_to_exitcode(status)
        stderr = self._process.stderr.read().decode() if self._process.stderr else ""
        if self._process.returncode not in (0, -2, 130):
            raise RuntimeError(f"vegeta attack failed: {(stderr.strip().splitlines() or ['?'])[0]}")
        cpu = usage.ru_utime + usage.ru_stime
        report = json.loads(subprocess.run(
            [str(self.binary), "report", "-type=json", str(self.results)],
            capture_output=True, check=True).stdout)  # fmt: skip
        latencies = report["latencies"]
        statuses: list[int] = []
        if by_request:
            encoded = subprocess.run([str(self.binary), "encode", "-to=json", str(self.results)],
                                     capture_output=True, check=True).stdout  # fmt: skip
            rows = [json.loads(line) for line in encoded.splitlines() if line.strip()]
            statuses = [int(row["code"]) for row in sorted(rows, key=lambda r: r["seq"])]
        duration_s = (report.get("duration", 0) + report.get("wait", 0)) / 1e9
        attack = Attack(
            requests=int(report["requests"]),
            seconds=duration_s or (time.monotonic() - self.started),
            status_codes={str(k): int(v) for k, v in (report.get("status_codes") or {}).items()},
            p50_ms=latencies["50th"] / 1e6,
            p99_ms=latencies["99th"] / 1e6,
            max_ms=latencies["max"] / 1e6,
            cpu_s=cpu,
            statuses=statuses,
        )
        shutil.rmtree(self.folder, ignore_errors=True)
        return attack

    def run(self, by_request: bool = False) -> Attack:
        return self.start().wait(by_request)


def describe(binary: Path | None) -> str:
    """One line for a benchmark's notes: which load generator ran."""
    if binary is None:
        return "Load generator: Python (aiohttp/httpx), Go missing: it shares the CPU it measures."
    return (f"Load generator: vegeta {VEGETA_VERSION} (Go, built by the benchmark into "
            f"{binary.parent.relative_to(PROJECT_ROOT)}); its own CPU is in each row.")  # fmt: skip


def main() -> Any:
    binary = vegeta()
    print(binary if binary else "vegeta unavailable (no Go toolchain)")


if __name__ == "__main__":
    main()


class VegetaTraffic:
    """The soak's traffic (:class:`movieflix_lab.jobs.soak.Traffic`) from vegeta.

    The events are made before the attack (simulated, each stamped with the time it is
    planned to be sent, in batches of ``options.batch``), so the load costs vegeta's CPU
    only; a constant rate (no burst). Live counts are what vegeta was scheduled to send;
    after :meth:`stop` they are what the gateway answered.
    """

    def __init__(self, binary: Path, url: str, options: Any, api_key: str | None) -> None:
        from datetime import UTC, datetime, timedelta

        from movieflix_lab.events import encode
        from movieflix_lab.jobs.soak import restamped
        from movieflix_lab.kafka.event_writer import TOPIC_BY_EVENT_TYPE

        if options.burst_factor != 1.0:
            raise ValueError("VegetaTraffic sends a constant rate: burst_factor must be 1")
        self.options = options
        self.batch = options.batch
        self.request_rate = options.rate / options.batch
        requests = int(self.request_rate * options.seconds * 1.05) + 2  # vegeta may send a few more
        t0 = datetime.now(UTC)
        events = restamped(options, lambda i: t0 + timedelta(seconds=i / options.rate))
        self._bodies: list[bytes] = []
        self._topics: list[list[str]] = []
        for _ in range(requests):
            batch = [next(events) for _ in range(self.batch)]
            self._bodies.append(b"[" + b",".join(encode(e) for e in batch) + b"]")
            self._topics.append([TOPIC_BY_EVENT_TYPE[e.event_type].name for e in batch])  # type: ignore[attr-defined]
        headers = {"content-type": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        self._attack = Vegeta(binary, url + "/v1/events", self._bodies, rate=self.request_rate,
                              seconds=options.seconds, workers=8, headers=headers)  # fmt: skip
        self.started = 0.0
        self.errors = 0
        self.by_topic: dict[str, int] = {}
        self.result: Attack | None = None
        self._final: tuple[int, int] | None = None  # (sent, accepted) once stopped
        self._cpu_s = 0.0

    def start(self) -> VegetaTraffic:
        self._attack.start()
        self.started = self._attack.started
        return self

    @property
    def phase(self) -> str:
        from movieflix_lab.jobs.soak import soak_phase

        return soak_phase(self.options, time.monotonic() - self.started)

    @property
    def sent(self) -> int:
        if self._final is not None:
            return self._final[0]
        elapsed = min(time.monotonic() - self.started, self.options.seconds)
        return int(elapsed * self.request_rate) * self.batch

    @property
    def accepted(self) -> int:
        return self._final[1] if self._final is not None else self.sent

    def cpu_s(self) -> float:
        """The load generator's CPU seconds so far (live while it runs, exact after)."""
        import psutil

        if self.result is not None:
            return self.result.cpu_s
        try:
            times = psutil.Process(self._attack._process.pid).cpu_times()  # type: ignore[union-attr]
            self._cpu_s = times.user + times.system
        except psutil.NoSuchProcess:
            pass
        return self._cpu_s

    def stop(self) -> None:
        self._attack.stop()
        self.result = self._attack.wait(by_request=True)
        ok = [i for i, code in enumerate(self.result.statuses) if code == 200]
        self._final = (self.result.requests * self.batch, len(ok) * self.batch)
        self.errors = self.result.requests - len(ok)
        # Request i carried body i only as far as vegeta's order goes: exact when every
        # request succeeded, unknown otherwise (then left empty).
        if not self.errors:
            for i in ok:
                for topic in self._topics[i % len(self._topics)]:
                    self.by_topic[topic] = self.by_topic.get(topic, 0) + 1
