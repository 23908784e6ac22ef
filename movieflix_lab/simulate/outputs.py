"""Where simulated events go: Kafka, JSON lines, Parquet, or the HTTP gateway.

Every sink writes the codec's encoding of each event (a JSON line is exactly the body the
gateway accepts) and keeps no more than one batch in memory.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Any, Protocol

from movieflix_lab.config import Settings
from movieflix_lab.events.codec import encode
from movieflix_lab.events.models import EventBase
from movieflix_lab.exceptions import MovieflixError

__all__ = ["EventSink", "GatewaySink", "JsonlSink", "KafkaSink", "ParquetSink", "TimedSink"]


class EventSink(Protocol):
    def write(self, event: EventBase) -> None: ...

    def close(self) -> None: ...


class KafkaSink:
    """Through the Quix producer, to each event type's topic (see ``kafka.event_writer``)."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import KafkaError, Message

        from movieflix_lab.kafka.event_writer import EventWriter

        self._writer = EventWriter(settings)
        self.failed: list[str] = []

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self.failed.append(error.str())

        self._on_delivery = on_delivery

    def write(self, event: EventBase) -> None:
        self._writer.send(event, self._on_delivery)

    def close(self) -> None:
        remaining = self._writer.flush(60)
        if remaining or self.failed:
            first = self.failed[0] if self.failed else "delivery timed out"
            raise MovieflixError(
                f"{remaining + len(self.failed)} events were not delivered to Kafka ({first})"
            )


class TimedSink(KafkaSink):
    """The Kafka sink, noting when each event was handed to the producer (wall clock, ms)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.produced_ms: dict[str, float] = {}

    def write(self, event: EventBase) -> None:
        super().write(event)
        self.produced_ms[str(event.event_id)] = time.time() * 1000


class JsonlSink:
    """One JSON object per line, to a file or stdout."""

    def __init__(self, path: Path | None = None) -> None:
        self._own = path is not None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[bytes] = path.open("wb") if path is not None else sys.stdout.buffer

    def write(self, event: EventBase) -> None:
        self._out.write(encode(event) + b"\n")

    def close(self) -> None:
        self._out.flush()
        if self._own:
            self._out.close()


class ParquetSink:
    """Parquet part files per event type: ``PATH/event_type=play/part-00000.parquet``.

    Each type has its own columns; read one type with
    ``polars.read_parquet(PATH / "event_type=watch")``.
    """

    def __init__(self, path: Path, batch_size: int = 50_000) -> None:
        self.path = path
        self.batch_size = batch_size
        self._rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._parts: dict[str, int] = defaultdict(int)
        path.mkdir(parents=True, exist_ok=True)

    def write(self, event: EventBase) -> None:
        kind = event.event_type  # type: ignore[attr-defined]
        row = event.model_dump(mode="python")
        row["event_id"] = str(row["event_id"])
        if "ip" in row:
            row["ip"] = str(row["ip"])
        rows = self._rows[kind]
        rows.append(row)
        if len(rows) >= self.batch_size:
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        import polars as pl

        rows = self._rows.pop(kind, [])
        if not rows:
            return
        folder = self.path / f"event_type={kind}"
        folder.mkdir(parents=True, exist_ok=True)
        frame = pl.DataFrame(rows, infer_schema_length=None).drop("event_type")
        target = folder / f"part-{self._parts[kind]:05d}.parquet"
        temporary = target.with_suffix(".tmp")
        frame.write_parquet(temporary)
        temporary.rename(target)  # readers never see a half-written part
        self._parts[kind] += 1

    def close(self) -> None:
        for kind in list(self._rows):
            self._flush(kind)


class _Unavailable(Exception):
    """The gateway answered 503: Kafka is away, retry (after ``Retry-After``)."""

    def __init__(self, retry_after: float, detail: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class GatewaySink:
    """POSTs batches to the gateway's ``/v1/events``; retries what may succeed later.

    An unreachable gateway or a 503 (Kafka away) is retried with tenacity: exponential
    backoff with jitter (so many simulators do not retry in step), never sooner than the
    gateway's ``Retry-After``, for up to ``max_retry_s``. Any other 4xx/5xx is an error at
    once: sending the same batch again would not change the answer.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 100,
        api_key: str | None = None,
        max_retry_s: float = 120.0,
        first_wait_s: float = 0.25,
        max_wait_s: float = 10.0,
    ) -> None:
        import httpx

        self.endpoint = url.rstrip("/") + "/v1/events"
        self.batch_size = batch_size
        self.max_retry_s = max_retry_s
        self._waits = (first_wait_s, max_wait_s)
        headers = {"content-type": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        self._client = httpx.Client(headers=headers, timeout=30.0)
        self._batch: list[bytes] = []
        self.retries = 0
        #: Seconds waited before each retry, in order (what the backoff chose).
        self.waited: list[float] = []

    def write(self, event: EventBase) -> None:
        self._batch.append(encode(event))
        if len(self._batch) >= self.batch_size:
            self._post()

    def _send(self, body: bytes) -> Any:
        response = self._client.post(self.endpoint, content=body)
        if response.status_code == 503:
            after = response.headers.get("retry-after", "1")
            raise _Unavailable(float(after) if after.isdigit() else 1.0, response.text[:300])
        return response

    def _post(self) -> None:
        import httpx
        from tenacity import (
            RetryCallState,
            Retrying,
            retry_if_exception_type,
            stop_after_delay,
            wait_exponential_jitter,
        )

        if not self._batch:
            return
        body = b"[" + b",".join(self._batch) + b"]"
        first, most = self._waits
        backoff = wait_exponential_jitter(multiplier=first, max=most, jitter=first)

        def wait(state: RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            return max(getattr(failure, "retry_after", 0.0), backoff(state))

        def counted(state: RetryCallState) -> None:
            self.retries += 1
            self.waited.append(state.upcoming_sleep)

        retrying = Retrying(
            retry=retry_if_exception_type((httpx.TransportError, _Unavailable)),
            wait=wait, stop=stop_after_delay(self.max_retry_s), before_sleep=counted,
            reraise=True,
        )  # fmt: skip
        try:
            response = retrying(self._send, body)
        except httpx.TransportError as exc:
            raise MovieflixError(
                f"gateway {self.endpoint} unreachable for {self.max_retry_s:g} s: {exc}"
            ) from None
        except _Unavailable as exc:
            raise MovieflixError(
                f"gateway answered 503 for {self.max_retry_s:g} s (Kafka unavailable): {exc}"
            ) from None
        if response.status_code >= 400:
            raise MovieflixError(
                f"gateway answered {response.status_code} for a batch: {response.text[:300]}"
            )
        self._batch = []

    def close(self) -> None:
        self._post()
        self._client.close()
