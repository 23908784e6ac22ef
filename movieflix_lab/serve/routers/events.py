"""``POST /v1/events``: the gateway from devices into Kafka.

Batch semantics: **all or nothing**. The body is one event object or an array of up to
``MOVIEFLIX_GATEWAY_MAX_BATCH`` events. If any event is invalid the whole request is refused
(422) and every problem is listed with its index and field, so nothing is written and the
client never has to work out which items landed. Valid requests are answered 200 only after
Kafka acknowledged every event (acks=all, idempotent producer); if Kafka cannot confirm them
the answer is 503 with ``Retry-After`` and the client sends the same request again. A retry
after a 503 may write an event twice; each carries its ``event_id``, so consumers can drop
the copy. An acknowledged event is never lost.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import jiter
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from movieflix_lab.events.codec import EventDecodeError, decode_batch, event_json_schema
from movieflix_lab.events.fast import WireEvent, fast_batch
from movieflix_lab.events.models import EventBase
from movieflix_lab.serve.auth import SECURED, refused
from movieflix_lab.serve.delivery import EventRefusedError, KafkaUnavailableError
from movieflix_lab.serve.dependencies import DeliveryDep, MetricsDep, SettingsDep
from movieflix_lab.serve.errors import ErrorBody, error_response
from movieflix_lab.serve.metrics import GatewayMetrics

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["events"])

RETRY_AFTER_S = "2"
#: ``application/json`` and ``application/*+json``, with parameters (``; charset=utf-8``).
_JSON_TYPE = re.compile(r"^\s*application/([\w.-]+\+)?json\s*(;.*)?$", re.IGNORECASE)


class AcceptedEvent(BaseModel):
    event_id: str
    topic: str
    partition: int
    offset: int


class IngestResponse(BaseModel):
    accepted: int
    events: list[AcceptedEvent]


def _request_body_schema() -> dict[str, Any]:
    one = event_json_schema()
    definitions = one.pop("$defs", {})
    # On the wire ``event_type`` picks the model, so a body must carry it, although each
    # model has it as a default (a PlayEvent built in Python knows its type).
    for definition in definitions.values():
        if "event_type" in definition.get("properties", {}):
            required = definition.setdefault("required", [])
            if "event_type" not in required:
                required.insert(0, "event_type")
        version = definition.get("properties", {}).get("schema_version")
        if version is not None and "default" in version:  # newer versions are refused
            version["maximum"] = version["default"]
        # Strings are stripped before their length is checked: a non-empty one needs a
        # character that is not whitespace.
        for prop in definition.get("properties", {}).values():
            if prop.get("type") == "string" and prop.get("minLength") and "pattern" not in prop:
                prop["pattern"] = r"\S"
        # pydantic's "ipvanyaddress" is no OpenAPI format: say it in formats clients know.
        for name, prop in list(definition.get("properties", {}).items()):
            if prop.get("format") == "ipvanyaddress":
                definition["properties"][name] = {
                    "title": prop.get("title", name),
                    "anyOf": [{"type": "string", "format": "ipv4"},
                              {"type": "string", "format": "ipv6"}],
                }  # fmt: skip
    schema = {"oneOf": [one, {"type": "array", "items": one, "minItems": 1}]}
    # Inline definitions so the OpenAPI document stays self-contained.
    text = json.dumps(schema).replace("#/$defs/", "#/components/schemas/")
    return {"schema": json.loads(text), "definitions": definitions}


_BODY = _request_body_schema()


def body_definitions() -> dict[str, Any]:
    """The event schemas the request body refers to, for the OpenAPI components."""
    text = json.dumps(_BODY["definitions"]).replace("#/$defs/", "#/components/schemas/")
    return json.loads(text)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _depth(value: Any, limit: int) -> bool:
    """Whether ``value`` nests no deeper than ``limit`` (iteratively: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return True


def _parse(body: bytes, max_depth: int) -> Any:
    """The body as JSON, or ``ValueError`` saying what is wrong with it: not UTF-8 JSON (a
    BOM, NaN or Infinity, a number beyond a double included), nested deeper than
    ``max_depth``, or an object with a key given twice. orjson checks it first (it never
    recurses unbounded); the values then come from jiter (integers beyond 64 bits exact,
    duplicate keys refused; it stops at 200 levels of its own)."""
    try:
        checked = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None
    if not _depth(checked, max_depth):
        raise ValueError(f"nested deeper than {max_depth} levels (gateway_max_json_depth)")
    return _values(body)


def _values(body: bytes) -> Any:
    """``body``'s values, refusing an object that gives a key twice (which value would count
    is up to each parser: the gateway does not guess)."""
    try:
        return jiter.from_json(body, allow_inf_nan=False, catch_duplicate_keys=True)
    except ValueError as exc:
        raise ValueError(str(exc).replace("Detected duplicate key", "duplicate key")) from None


def _unique_keys(body: bytes) -> bool:
    """Whether no object in ``body`` (valid JSON) gives a key twice. msgspec, like most
    parsers, keeps the last value: the fast path asks jiter (about a quarter of its parse)."""
    try:
        jiter.from_json(body, catch_duplicate_keys=True)
    except ValueError:
        return False
    return True


def _validate(
    body: bytes, max_batch: int, max_depth: int, metrics: GatewayMetrics
) -> tuple[Sequence[EventBase | WireEvent], bool] | JSONResponse:
    """The full validation (pydantic): any spelling of an event, or the errors by field."""
    try:
        payload = _parse(body, max_depth)
    except ValueError as exc:
        metrics.rejects.labels("malformed_json").inc()
        return error_response(400, "malformed JSON", [{"field": "body", "message": str(exc)}])

    if isinstance(payload, dict):
        items = [payload]
    elif isinstance(payload, list) and payload:
        items = payload
        if len(items) > max_batch:
            metrics.rejects.labels("too_large").inc()
            message = f"{len(items)} events; the limit is {max_batch}"
            return error_response(413, "batch too large", [{"field": "body", "message": message}])
    else:
        metrics.rejects.labels("invalid_event").inc()
        return error_response(
            422,
            "the body must be one event object or a non-empty array of events",
            [{"field": "body", "message": f"got {type(payload).__name__}"}],
        )

    batch = isinstance(payload, list)  # an index only means something in an array
    try:
        return decode_batch(items), batch
    except EventDecodeError as exc:
        metrics.rejects.labels("invalid_event").inc()
        problems = [
            {"field": e.field or "body", "message": e.message, "index": e.index if batch else None}
            for e in exc.errors
        ]
        return error_response(422, f"{len(exc.errors)} invalid field(s)", problems)


@router.post(
    "/events",
    response_model=IngestResponse,
    summary="Ingest one event or a batch",
    responses={
        400: {
            "model": ErrorBody,
            "description": "Malformed JSON (not UTF-8 JSON; a BOM, NaN or Infinity; nested"
            " deeper than `gateway_max_json_depth`; a key given twice in an object).",
        },
        415: {"model": ErrorBody, "description": "A content type other than JSON."},
        401: {"model": ErrorBody, "description": "Missing or wrong API key."},
        413: {"model": ErrorBody, "description": "Body or batch too large."},
        422: {
            "model": ErrorBody,
            "description": "Invalid events (all listed, by index), including timestamps"
            " further ahead of the gateway's clock than `gateway_max_future_s`.",
        },
        503: {"model": ErrorBody, "description": "Kafka unavailable: retry after Retry-After."},
    },
    openapi_extra={
        "security": SECURED,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _BODY["schema"]}},
        },
    },
)
async def ingest(
    request: Request, settings: SettingsDep, delivery: DeliveryDep, metrics: MetricsDep
) -> Response:
    """Validate, route each event to its topic (key = user id), wait for Kafka's ack."""
    started = time.perf_counter()
    if (denied := refused(request, settings.api_key_value)) is not None:
        metrics.rejects.labels("unauthorized").inc()
        return denied
    kind = request.headers.get("content-type")
    if kind is not None and not _JSON_TYPE.match(kind):
        metrics.rejects.labels("malformed_json").inc()
        return error_response(
            415, "the body must be JSON",
            [{"field": "body", "message": f"Content-Type {kind[:80]!r}: send application/json"}],
        )  # fmt: skip
    try:
        body = await _read_body(request, settings.gateway_max_body_bytes)
    except _TooLarge:
        metrics.rejects.labels("too_large").inc()
        limit = settings.gateway_max_body_bytes
        return error_response(
            413, f"body larger than {limit} bytes", [{"field": "body", "message": "too large"}]
        )
    events: Sequence[EventBase | WireEvent]
    fast = fast_batch(body)
    if (
        fast is not None and fast[0] and len(fast[0]) <= settings.gateway_max_batch
        and _unique_keys(body)
    ):  # fmt: skip
        events, batch = fast  # canonical events: parsed and validated in one pass
    else:
        parsed = _validate(
            body, settings.gateway_max_batch, settings.gateway_max_json_depth, metrics
        )
        if isinstance(parsed, JSONResponse):
            return parsed
        events, batch = parsed

    latest_ms = int(time.time() * 1000 + settings.gateway_max_future_s * 1000)
    future = [
        {"field": "timestamp", "index": i if batch else None,
         "message": f"{(e.timestamp_ms - latest_ms) / 1000 + settings.gateway_max_future_s:.0f}"
                    f" s ahead of the gateway's clock; at most "
                    f"{settings.gateway_max_future_s:g} s ahead is accepted"}
        for i, e in enumerate(events) if e.timestamp_ms > latest_ms
    ]  # fmt: skip
    if future:
        metrics.rejects.labels("invalid_event").inc()
        return error_response(422, f"{len(future)} invalid field(s)", future)

    try:
        delivered = await delivery.deliver(events)
    except EventRefusedError as exc:
        metrics.rejects.labels("invalid_event").inc()
        problem = {"field": exc.field, "message": str(exc),
                   "index": exc.position if batch else None}  # fmt: skip
        return error_response(
            422, "Kafka refused an event; the request is not acknowledged", [problem]
        )
    except KafkaUnavailableError as exc:
        metrics.rejects.labels("kafka_unavailable").inc()
        return error_response(
            503,
            "Kafka is unavailable; nothing was acknowledged: retry",
            [{"field": "kafka", "message": str(exc)}],
            headers={"retry-after": RETRY_AFTER_S},
        )
    metrics.delivery.observe(time.perf_counter() - started)
    for event_type, count in Counter(e.event_type for e in events).items():  # type: ignore[union-attr]
        metrics.events.labels(event_type).inc(count)
    # Built directly: the shape is IngestResponse's, without validating our own output again.
    accepted = [
        {"event_id": d.event_id, "topic": d.topic, "partition": d.partition, "offset": d.offset}
        for d in delivered
    ]
    return Response(orjson.dumps({"accepted": len(accepted), "events": accepted}),
                    media_type="application/json")  # fmt: skip
