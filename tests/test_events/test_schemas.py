"""Strict schema management: checked-in schemas, version bumps, reading older versions."""

import json

import jsonschema
import pytest

from movieflix_lab.events import EVENT_MODELS, decode
from movieflix_lab.events.schemas import SCHEMA_DIR, check_schemas, current_schema, schema_path

EXAMPLES = sorted((SCHEMA_DIR / "examples").glob("*.json"))


def test_every_model_matches_its_checked_in_schema() -> None:
    assert check_schemas() == []


def test_a_schema_change_without_a_version_bump_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import create_model

    from movieflix_lab.events.models import RateEvent

    changed = create_model("RateEvent", __base__=RateEvent, comment=(str | None, None))
    monkeypatch.setitem(EVENT_MODELS, "rate", changed)
    problems = check_schemas()
    assert len(problems) == 1
    assert "bump RateEvent.SCHEMA_VERSION" in problems[0]


def test_every_version_of_every_type_has_a_schema_and_an_example() -> None:
    for event_type, model in EVENT_MODELS.items():
        for version in range(1, model.SCHEMA_VERSION + 1):
            assert schema_path(event_type, version).is_file(), (event_type, version)
            assert (SCHEMA_DIR / "examples" / f"{event_type}.v{version}.json").is_file()


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_current_models_read_every_versions_data(example) -> None:  # type: ignore[no-untyped-def]
    event_type, version = example.stem.split(".v")
    data = json.loads(example.read_text())
    # The example is valid data of its own version...
    old_schema = json.loads(schema_path(event_type, int(version)).read_text())
    jsonschema.validate(data, old_schema)
    # ...and the current model reads it, keeping what it said.
    event = decode(json.dumps(data))
    assert type(event) is EVENT_MODELS[event_type]
    assert event.schema_version == int(version)
    assert str(event.event_id) == data["event_id"]


def test_the_newest_schema_is_the_models_schema() -> None:
    for event_type, model in EVENT_MODELS.items():
        on_disk = json.loads(schema_path(event_type, model.SCHEMA_VERSION).read_text())
        assert on_disk == current_schema(model)


def test_login_v1_data_is_valid_v2_data() -> None:
    """v2 only added an optional field: v1 data is valid v2 data too (backward compatible)."""
    v1 = json.loads((SCHEMA_DIR / "examples" / "login.v1.json").read_text())
    jsonschema.validate(v1, json.loads(schema_path("login", 2).read_text()))
