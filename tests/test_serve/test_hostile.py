"""Hostile bodies and keys: never a 5xx from what a client sends, the server still answering
on the same connection after each; every endpoint that shows user data behind its key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from movieflix_lab.config import Settings
from movieflix_lab.jobs.processes import gateway_process
from movieflix_lab.kafka.catalog import create_topics
from movieflix_lab.serve import create_app
from tests.fixtures.kafka import free_port, with_settings

RECENT = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
MIB = 1 << 20
J = "application/json"


def _event(**fields: object) -> dict[str, object]:
    return {"event_id": str(uuid.uuid4()), "user_id": "u-hostile", "timestamp": RECENT,
            "event_type": "rate", "movie_id": "m1", "rating": 4, **fields}  # fmt: skip


def _deep(levels: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * levels + b"]" * levels
    return b'{"a":' * levels + b"1" + b"}" * levels


#: (name, body, content type, the statuses allowed, the field named)
HOSTILE: list[tuple[str, bytes, str, set[int]]] = [
    ("arrays 100 deep", _deep(100, "array"), J, {400}),
    ("arrays 1,000 deep", _deep(1_000, "array"), J, {400}),
    ("arrays 100,000 deep", _deep(100_000, "array"), J, {400}),
    ("objects 100,000 deep", _deep(100_000, "object"), J, {400}),
    ("an event 20 deep", json.dumps(_event(device_id=json.loads("[" * 19 + "]" * 19))).encode(),
     J, {400}),
    ("a 1 MiB string in an event", json.dumps(_event(movie_id="m" * (MIB - 300))).encode(),
     J, {413, 422}),
    ("a 3 MiB string", json.dumps(_event(movie_id="m" * (3 * MIB))).encode(), J, {422}),
    ("a 5 MiB string", json.dumps(_event(movie_id="m" * (5 * MIB))).encode(), J, {413}),
    ("a million small items", b"[" + b",".join([b"0"] * 1_000_000) + b"]", J, {413}),
    ("a number of 100,000 digits", b'{"rating": ' + b"9" * 100_000 + b"}", J, {400}),
    ("NaN", json.dumps(_event()).replace('"rating": 4', '"rating": NaN').encode(), J, {400}),
    ("Infinity", json.dumps(_event()).replace('"rating": 4', '"rating": Infinity').encode(),
     J, {400}),
    ("a byte-order mark", b"\xef\xbb\xbf" + json.dumps(_event()).encode(), J, {400}),
    ("not UTF-8", json.dumps(_event()).encode().replace(b"m1", b"m\xff"), J, {400}),
    ("a key twice", json.dumps(_event())[:-1].encode() + b', "rating": 5}', J, {400}),
    ("a key twice, canonical", json.dumps(_event(), separators=(",", ":"))[:-1].encode()
     + b',"rating":5}', J, {400}),
    ("a key twice, nested in a batch", json.dumps([_event(), _event()])[:-2].encode()
     + b', "user_id": "u2"}]', J, {400}),
    ("plain text", b"hello", "text/plain", {415}),
    ("a form", b"a=1&b=2", "application/x-www-form-urlencoded", {415}),
    ("JSON, a charset", json.dumps(_event()).encode(), "application/json; charset=utf-8", {200}),
    ("empty", b"", J, {400}),
    ("null", b"null", J, {422}),
]  # fmt: skip


@pytest.fixture(scope="module")
def served(kafka: Settings) -> Iterator[str]:
    # A 4 MiB body limit, so a million items are parsed before the batch limit refuses them.
    local = with_settings(kafka, gateway_max_body_bytes=4 * MIB)
    create_topics(local)
    with gateway_process(local, port=free_port()) as url:
        yield url


def test_hostile_bodies_get_a_4xx_naming_the_body_and_the_server_answers_on(served: str) -> None:
    with httpx.Client(base_url=served, timeout=60) as client:  # one keep-alive connection
        for name, body, kind, allowed in HOSTILE:
            response = client.post("/v1/events", content=body, headers={"content-type": kind})
            assert response.status_code in allowed, (
                name,
                response.status_code,
                response.text[:300],
            )
            if response.status_code >= 400:
                error = response.json()
                assert error["error"] and error["detail"], name
                if response.status_code in (400, 413, 415):
                    assert error["detail"][0]["field"] == "body", (name, error)
            assert client.get("/healthz").status_code == 200, f"no answer after {name}"


def test_the_depth_limit_is_a_setting(kafka: Settings) -> None:
    shallow = with_settings(kafka, gateway_max_json_depth=3)
    with TestClient(create_app(shallow)) as client:
        nested = client.post("/v1/events", json=[_event(device_id={"a": {"b": 1}})])
        assert nested.status_code == 400
        assert "deeper than 3 levels" in nested.json()["detail"][0]["message"]
        assert client.post("/v1/events", json=[_event(event_id=str(uuid.uuid4()))]).status_code in (
            200,
            422,
        )


def test_a_key_given_twice_is_refused_naming_it(kafka: Settings) -> None:
    """Which of two values a parser keeps differs between parsers: the gateway takes none."""
    canonical = json.dumps(_event(), separators=(",", ":")).encode()
    with TestClient(create_app(kafka)) as client:
        for body in (canonical[:-1] + b',"rating":5}', canonical[:-1] + b',"rating" : 5}'):
            refused = client.post("/v1/events", content=body, headers={"content-type": J})
            assert refused.status_code == 400, refused.text
            problem = refused.json()["detail"][0]
            assert problem["field"] == "body" and 'duplicate key "rating"' in problem["message"]
        assert client.post("/v1/events", content=canonical,
                           headers={"content-type": J}).status_code in (200, 503)  # fmt: skip


def test_an_unexpected_error_is_a_json_500_with_a_request_id(kafka: Settings) -> None:
    app = create_app(kafka)

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
        assert response.status_code == 500
        request_id = response.headers["x-request-id"]
        assert response.json() == {
            "error": "internal error",
            "detail": [
                {"field": "request", "message": f"request id {request_id}: the error is logged"}
            ],
        }
        assert client.get("/healthz").status_code == 200


READERS = ["/v1/fraud/alerts", "/v1/recommendations/u000001", "/v1/movies/m00001/similar"]


def test_every_endpoint_with_user_data_needs_the_read_key(kafka: Settings) -> None:
    keyed = with_settings(kafka, api_key="in-key", read_api_key="read-key",
                          metrics_api_key="scrape-key")  # fmt: skip
    with TestClient(create_app(keyed)) as client:
        for path in READERS:
            assert client.get(path).status_code == 401, path
            wrong = client.get(path, headers={"x-api-key": "in-key"})  # the ingest key: wrong
            assert wrong.status_code == 401 and wrong.json()["detail"][0]["field"] == "X-API-Key"
            assert wrong.headers["www-authenticate"] == "ApiKey"
            for headers in ({"x-api-key": "read-key"}, {"authorization": "Bearer read-key"}):
                right = client.get(path, headers=headers)
                # Past the key: alerts answer, recommendations say there is no model yet.
                assert right.status_code in (200, 503), path
        assert client.get("/v1/fraud/alerts", headers={"x-api-key": "read-key"}).status_code == 200
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"x-api-key": "read-key"}).status_code == 401
        assert client.get("/metrics", headers={"x-api-key": "scrape-key"}).status_code == 200
        assert (
            client.post("/v1/events", json=_event(), headers={"x-api-key": "read-key"}).status_code
            == 401
        )
        assert (
            client.post("/v1/events", json=_event(), headers={"x-api-key": "in-key"}).status_code
            == 200
        )
        assert client.get("/healthz").status_code == 200  # open
        assert client.get("/readyz").status_code in (200, 503)  # open: not a 401


def test_without_keys_the_readers_are_open(kafka: Settings) -> None:
    with TestClient(create_app(kafka)) as client:
        assert client.get("/v1/fraud/alerts").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_the_openapi_document_declares_the_keys(kafka: Settings) -> None:
    with TestClient(create_app(kafka)) as client:
        document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"] == {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "Bearer": {"type": "http", "scheme": "bearer"},
    }
    paths = document["paths"]
    for path, method in [
        ("/v1/events", "post"),
        *(
            (p, "get")
            for p in (
                "/v1/fraud/alerts",
                "/v1/recommendations/{user_id}",
                "/v1/movies/{movie_id}/similar",
            )
        ),
    ]:
        operation = paths[path][method]
        assert {"ApiKey": []} in operation["security"] and "401" in operation["responses"], path
    assert "security" not in paths["/healthz"]["get"] and "security" not in paths["/readyz"]["get"]
    assert {} in paths["/metrics"]["get"]["security"]  # keyed only when a metrics key is set
