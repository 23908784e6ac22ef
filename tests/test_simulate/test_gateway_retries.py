"""The simulator's gateway sink retries what may succeed later (a 503, an unreachable
gateway) with exponential backoff and jitter, never sooner than ``Retry-After``, and gives
up at once on any other refusal. Against a real HTTP server on localhost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.simulate import SimulationConfig, Simulator
from movieflix_lab.simulate.outputs import GatewaySink
from tests.fixtures.kafka import free_port

EVENT = next(iter(Simulator(SimulationConfig(seed=3, users=5, movies=5, minutes=30)).events()))


class Scripted(BaseHTTPRequestHandler):
    """Answers POSTs with the statuses in ``script`` (then 200), recording each body."""

    script: ClassVar[list[tuple[int, dict[str, str]]]] = []
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["content-length"])))
        status, headers = self.script.pop(0) if self.script else (200, {})
        body = b'{"accepted": 1, "events": []}' if status == 200 else b'{"error": "x"}'
        self.send_response(status)
        for name, value in {"content-type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[Scripted]]]:
    handler = type("Handler", (Scripted,), {"script": [], "bodies": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", handler
    httpd.shutdown()


def test_503s_are_retried_with_growing_waits_no_sooner_than_retry_after(server) -> None:  # type: ignore[no-untyped-def]
    url, handler = server
    handler.script = [(503, {"retry-after": "1"}), (503, {}), (503, {})]
    sink = GatewaySink(url, batch_size=1, first_wait_s=0.05, max_wait_s=2)
    sink.write(EVENT)
    assert sink.retries == 3 and len(handler.bodies) == 4
    assert len(set(handler.bodies)) == 1  # the same batch each time
    assert sink.waited[0] >= 1.0  # Retry-After: 1
    # Then the default Retry-After (1 s) or the backoff, whichever is longer; the backoff
    # itself doubles per attempt, plus up to one first wait of jitter.
    assert all(1.0 <= w <= 2.0 + 0.05 for w in sink.waited[1:])
    sink.close()


def test_the_backoff_doubles_with_jitter_when_the_gateway_is_unreachable() -> None:
    sink = GatewaySink(f"http://127.0.0.1:{free_port()}", batch_size=1, max_retry_s=1.5,
                       first_wait_s=0.1, max_wait_s=0.8)  # fmt: skip
    with pytest.raises(MovieflixError, match=r"unreachable for 1.5 s"):
        sink.write(EVENT)
    waits = sink.waited
    assert len(waits) >= 3
    for attempt, wait in enumerate(waits):
        low = min(0.1 * 2**attempt, 0.8)
        assert low <= wait <= low + 0.1 + 1e-9, (attempt, waits)
    assert len({round(w, 6) for w in waits}) == len(waits)  # jitter: no two alike


def test_any_other_refusal_is_an_error_at_once(server) -> None:  # type: ignore[no-untyped-def]
    url, handler = server
    handler.script = [(422, {})]
    sink = GatewaySink(url, batch_size=1, first_wait_s=0.05)
    with pytest.raises(MovieflixError, match="gateway answered 422"):
        sink.write(EVENT)
    assert sink.retries == 0 and len(handler.bodies) == 1
