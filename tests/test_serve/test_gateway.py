"""The gateway end to end through the real broker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from movieflix_lab.config import Settings
from movieflix_lab.events import decode, decode_record, encode, to_record
from movieflix_lab.kafka.catalog import create_topics, partition_for_user, watch_history_key
from movieflix_lab.kafka.event_writer import TOPIC_BY_EVENT_TYPE
from movieflix_lab.serve import create_app
from movieflix_lab.simulate import SimulationConfig, Simulator
from tests.fixtures.kafka import read_back, with_settings

#: Recent on purpose: the broker deletes records older than a topic's retention.
RECENT = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")


def _event(kind: str = "rate", user: str | None = None, **fields: object) -> dict:
    base = {
        "event_id": str(uuid.uuid4()),
        "user_id": user or f"u-{uuid.uuid4().hex[:8]}",
        "timestamp": RECENT,
    }
    bodies = {
        "rate": {"event_type": "rate", "movie_id": "m1", "rating": 4},
        "search": {"event_type": "search", "query": "noir", "result_count": 3, "device_id": "d1"},
    }
    return {**base, **bodies[kind], **fields}


@pytest.fixture(scope="module")
def gateway(kafka: Settings) -> Iterator[TestClient]:
    create_topics(kafka)
    with TestClient(create_app(kafka)) as client:
        yield client


def test_single_event_lands_in_its_topic_keyed_by_user(gateway: TestClient, kafka: Settings):
    event = _event("search")
    response = gateway.post("/v1/events", json=event)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1 and body["events"][0]["topic"] == "search-events"

    message = read_back(kafka, "search-events", {event["event_id"]})[event["event_id"]]
    assert message.key().decode() == event["user_id"]
    assert (message.partition(), message.offset()) == (
        body["events"][0]["partition"], body["events"][0]["offset"],
    )  # fmt: skip
    assert decode(message.value()) == decode(json.dumps(event))
    event_time_ms = int(datetime.fromisoformat(RECENT).timestamp() * 1000)
    assert message.timestamp()[1] == event_time_ms  # the event time, not the arrival time


def test_batch_routes_every_type(gateway: TestClient, kafka: Settings) -> None:
    config = SimulationConfig(seed=21, users=40, movies=60, minutes=None, events=400, activity=40)
    events = list(Simulator(config).events())
    for start in range(0, len(events), 100):
        chunk = events[start : start + 100]
        body = b"[" + b",".join(encode(e) for e in chunk) + b"]"
        response = gateway.post("/v1/events", content=body)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(chunk)

    expected_topic = {"play": "user-interactions", "pause": "user-interactions",
                      "seek": "user-interactions", "stop": "user-interactions",
                      "rate": "user-interactions", "search": "search-events",
                      "login": "login-events", "watch": "watch-history"}  # fmt: skip
    for topic in set(expected_topic.values()):
        wanted = {str(e.event_id): e for e in events if expected_topic[e.event_type] == topic}
        found = read_back(kafka, topic, set(wanted))
        assert set(found) == set(wanted), topic
        for event_id, message in found.items():
            event = wanted[event_id]
            if topic == "watch-history":
                assert message.key().decode() == watch_history_key(event.user_id, event.movie_id)
                assert message.partition() == partition_for_user(event.user_id, 6)
            else:
                assert message.key().decode() == event.user_id
                assert message.partition() == partition_for_user(event.user_id, 6)


@pytest.mark.parametrize(
    ("body", "status", "field", "index"),
    [
        (b'{"event_type": "rate",', 400, "body", None),
        (b"42", 422, "body", None),
        (b"[]", 422, "body", None),
        (json.dumps(_event(event_type="purchase")).encode(), 422, "event_type", None),
        (json.dumps({k: v for k, v in _event().items() if k != "movie_id"}).encode(), 422,
         "movie_id", None),
        (json.dumps(_event(rating=11)).encode(), 422, "rating", None),
        (json.dumps(_event(timestamp="yesterday")).encode(), 422, "timestamp", None),
        (json.dumps([_event(), _event(), _event(rating=0), _event()]).encode(), 422, "rating", 2),
        # Kafka refuses records stamped an hour ahead of its clock: refused here, by name.
        (json.dumps([_event(), _event(timestamp=(datetime.now(UTC) + timedelta(hours=2))
                                      .isoformat())]).encode(), 422, "timestamp", 1),
        (json.dumps(_event(timestamp=1772481600000)).encode(), 422, "timestamp", None),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_field(
    gateway: TestClient, body: bytes, status: int, field: str, index: int | None
) -> None:
    response = gateway.post("/v1/events", content=body,
                            headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["error"]
    assert any(d["field"] == field and d.get("index") == index for d in problem["detail"]), problem


def _canonical(event: dict) -> dict:
    """The event as the kit writes it (what the gateway's fast path reads)."""
    return json.loads(encode(decode(json.dumps(event))))


def test_every_spelling_of_a_valid_event_is_accepted_and_written_canonically(
    gateway: TestClient, kafka: Settings
) -> None:
    canonical = _canonical(_event("search"))
    assert canonical["timestamp"].endswith("Z")  # the fast path's form
    other = {**_event("search"), "user_id": "  u-spaced ", "event_id": str(uuid.uuid4()).upper(),
             "timestamp": (datetime.now(UTC) - timedelta(hours=1)).astimezone(
                 timezone(timedelta(hours=5))).isoformat()}  # fmt: skip
    for body in ([canonical], [canonical | {"event_id": str(uuid.uuid4())}, other]):
        response = gateway.post("/v1/events", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(body)
    wanted = {canonical["event_id"], other["event_id"].lower()}
    found = read_back(kafka, "search-events", wanted)
    assert set(found) == wanted
    for event in (canonical, other):
        message = found[event["event_id"].lower()]
        assert json.loads(message.value()) == _canonical(event)
        assert message.key().decode() == _canonical(event)["user_id"]


@pytest.mark.parametrize("spelling", ["canonical", "other"])
def test_the_future_and_invalid_fields_are_refused_on_either_path(
    gateway: TestClient, spelling: str
) -> None:
    ahead = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    stamp = ahead.isoformat().replace("+00:00", "Z" if spelling == "canonical" else "+00:00")
    first = _canonical(_event()) if spelling == "canonical" else _event()
    body = [first, {**first, "event_id": str(uuid.uuid4()), "timestamp": stamp}]
    response = gateway.post("/v1/events", json=body)
    assert response.status_code == 422, response.text
    assert [(d["field"], d["index"]) for d in response.json()["detail"]] == [("timestamp", 1)]
    response = gateway.post("/v1/events", json=[first, {**first, "rating": 9}])
    assert [(d["field"], d["index"]) for d in response.json()["detail"]] == [("rating", 1)]


def test_a_valid_integer_beyond_64_bits_takes_the_full_path(gateway: TestClient) -> None:
    """The contract bounds ``result_count`` below only; orjson (the fast path's encoder)
    refuses integers over 64 bits, so such an event is pydantic's to write."""
    event = _canonical(_event("search")) | {"result_count": 10**20}
    response = gateway.post("/v1/events", json=[_canonical(_event("search")), event])
    assert response.status_code == 200, response.text


def test_an_invalid_batch_writes_nothing(gateway: TestClient, kafka: Settings) -> None:
    good = [_event() for _ in range(5)]
    response = gateway.post("/v1/events", json=[*good, _event(rating="five")])
    assert response.status_code == 422
    assert [d["index"] for d in response.json()["detail"]] == [5]
    assert read_back(kafka, "user-interactions", {e["event_id"] for e in good}, timeout=3) == {}


def test_size_limits(kafka: Settings) -> None:
    limited = with_settings(kafka, gateway_max_batch=10, gateway_max_body_bytes=4096)
    with TestClient(create_app(limited)) as client:
        too_many = client.post("/v1/events", json=[_event() for _ in range(11)])
        assert too_many.status_code == 413 and "limit is 10" in too_many.text
        too_big = client.post("/v1/events", json=_event("search", query="x" * 200) | {
            "padding": "y" * 5000})  # fmt: skip
        assert too_big.status_code == 413 and "4096 bytes" in too_big.text


def test_api_key(kafka: Settings) -> None:
    keyed = with_settings(kafka, api_key="let-me-in")
    with TestClient(create_app(keyed)) as client:
        assert client.post("/v1/events", json=_event()).status_code == 401
        wrong = client.post("/v1/events", json=_event(), headers={"x-api-key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["detail"][0]["field"] == "X-API-Key"
        ok = client.post("/v1/events", json=_event(), headers={"x-api-key": "let-me-in"})
        assert ok.status_code == 200
        bearer = client.post("/v1/events", json=_event(),
                             headers={"authorization": "Bearer let-me-in"})  # fmt: skip
        assert bearer.status_code == 200
        assert client.get("/healthz").status_code == 200  # only ingestion needs the key


def test_health_readiness_metrics_docs(gateway: TestClient) -> None:
    assert gateway.get("/healthz").json() == {"status": "ok"}
    ready = gateway.get("/readyz")
    assert ready.status_code == 200 and ready.json()["kafka"] == "up"
    gateway.post("/v1/events", json=_event("search"))
    gateway.post("/v1/events", content=b"{")
    metrics = gateway.get("/metrics").text
    assert 'movieflix_gateway_events_total{event_type="search"}' in metrics
    assert 'movieflix_gateway_rejects_total{reason="malformed_json"}' in metrics
    assert "movieflix_gateway_delivery_seconds_bucket" in metrics
    assert 'movieflix_http_requests_total{route="/v1/events",status="200"}' in metrics
    assert "movieflix_gateway_kafka_up 1.0" in metrics
    assert gateway.get("/docs").status_code == 200
    schema = gateway.get("/openapi.json").json()
    body = schema["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["oneOf"][1]["type"] == "array"
    assert "WatchRecord" in schema["components"]["schemas"]


def test_with_avro_on_the_wire_the_gateway_writes_single_object_avro(kafka: Settings) -> None:
    """``MOVIEFLIX_WIRE_FORMAT=avro``: the HTTP contract stays JSON; what reaches Kafka is
    Avro's single-object encoding, from the fast path and from pydantic's alike, and reads
    back as the same records."""
    settings = with_settings(kafka, wire_format="avro")
    config = SimulationConfig(seed=22, users=30, movies=40, minutes=None, events=120, activity=40)
    events = list(Simulator(config).events())
    odd = {**_event("rate"), "user_id": "  u-spaced  "}  # another spelling: pydantic's path
    with TestClient(create_app(settings)) as client:
        body = b"[" + b",".join(encode(e) for e in events) + b"]"
        assert client.post("/v1/events", content=body).status_code == 200
        assert client.post("/v1/events", json=odd).status_code == 200
    wanted = {str(e.event_id): e for e in events}
    found: dict[str, object] = {}
    for topic in ("user-interactions", "search-events", "login-events", "watch-history"):
        ids = {i for i, e in wanted.items() if TOPIC_BY_EVENT_TYPE[e.event_type].name == topic}
        if topic == "user-interactions":
            ids.add(odd["event_id"])
        found.update(read_back(kafka, topic, ids))
    assert set(found) == set(wanted) | {odd["event_id"]}
    for event_id, message in found.items():
        value = message.value()  # type: ignore[attr-defined]
        assert value[:2] == b"\xc3\x01", value[:20]
        if event_id in wanted:
            assert decode_record(value) == to_record(wanted[event_id])
        else:
            assert decode_record(value)["user_id"] == "u-spaced"
