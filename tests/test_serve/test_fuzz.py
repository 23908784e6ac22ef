"""Schemathesis against the serve app's own OpenAPI, over real HTTP, with the real broker
behind it: whatever a client sends, no 5xx and no answer that breaks the schema.

The app runs as ``movieflix-lab serve`` (a subprocess, as deployed) with a small trained
recommendation model, so every operation in the schema is live — a 503 "no model yet" would
be a 5xx the fuzzer rightly reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from movieflix_lab.config import Settings
from movieflix_lab.jobs.processes import gateway_process
from movieflix_lab.jobs.recs import train_recs
from movieflix_lab.kafka.catalog import create_topics
from movieflix_lab.lab import simulated_history
from tests.fixtures.kafka import free_port, with_settings

KEY = "fuzz-key"


@pytest.fixture(scope="module")
def served(kafka: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("fuzz")
    # Keyed, as the OpenAPI document says it may be: the fuzzer sends the key, and checks
    # that a request without it, or with a wrong one, is refused.
    local = with_settings(kafka, models_dir=home / "models", data_dir=home / "data",
                          api_key=KEY, read_api_key=KEY)  # fmt: skip
    create_topics(local)
    interactions, _ = simulated_history(seed=3, users=200, days=5, movies=300)
    train_recs(local, interactions=interactions, tune=False, source={"kind": "test"})
    with gateway_process(local, port=free_port()) as url:
        yield url


@pytest.fixture(scope="module")
def api(served: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served}/openapi.json")


#: Schema-valid requests the app refuses for what the schema cannot say: a genre the model
#: does not know (the model's catalog decides), an event stamped further ahead of the clock
#: than Kafka accepts. Every other 422 on schema-valid data fails the test.
#: And the cross-field rules of the contracts, which JSON Schema does not carry.
DATA_DEPENDENT = {
    "genre": "unknown genre",
    "timestamp": "ahead of the gateway's clock",
    "started_at": "must not be after timestamp",
    "failure_reason": "only allowed when success is false",
}


def _positive_refusal_is_data_dependent(response: Any) -> None:
    if response.status_code != 422:
        return
    detail = response.json()["detail"]
    assert detail and all(
        d["field"] in DATA_DEPENDENT and DATA_DEPENDENT[d["field"]] in d["message"] for d in detail
    ), f"schema-valid request refused: {response.text}"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_5xx_and_every_answer_matches_the_schema(
    api: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    # Each operation's Hypothesis strategy, driven here: schemathesis' lazy pytest loader
    # (``from_fixture``) does not run under pytest 9.
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 7
    failures: dict[str, str] = {}
    calls: Counter[int] = Counter()
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers={"X-API-Key": KEY})
            calls[response.status_code] += 1
            if mode is GenerationMode.POSITIVE:
                case.validate_response(response, excluded_checks=[positive_data_acceptance])
                _positive_refusal_is_data_dependent(response)
            else:
                case.validate_response(response)

        try:
            check()
        except Unsatisfiable:  # no parameters, no body: nothing to make invalid
            assert mode is GenerationMode.NEGATIVE and operation.method == "get"
        except BaseException as exc:
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
    assert not any(status >= 500 for status in calls)
    if mode is GenerationMode.POSITIVE:  # the fuzzer got through: events were accepted
        assert calls[200] > 50, calls
    else:
        assert sum(n for status, n in calls.items() if 400 <= status < 500) > 50, calls


def test_the_schema_covers_every_public_operation(api: schemathesis.BaseSchema) -> None:
    paths = set(api.raw_schema["paths"])
    assert {"/v1/events", "/healthz", "/readyz", "/v1/recommendations/{user_id}",
            "/v1/movies/{movie_id}/similar", "/v1/fraud/alerts"} <= paths  # fmt: skip
