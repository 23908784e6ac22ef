"""The checked-in JSON Schemas of the contracts, one file per event type and version.

``movieflix_lab/schemas/<event_type>.v<N>.json`` is the schema of version N. Files of older
versions stay, next to an example payload of each in ``schemas/examples/``, so tests can show
the current models still read every older version's data.

``python -m movieflix_lab.events.schemas write`` writes the files of the current versions; it
refuses to overwrite a version whose schema changed (bump ``SCHEMA_VERSION`` instead). It
also writes each version's Avro twin and each topic's Avro union
(:mod:`movieflix_lab.events.avro`). ``... check`` lists the differences.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from movieflix_lab.events.models import EVENT_MODELS, EventBase

__all__ = ["SCHEMA_DIR", "check_schemas", "current_schema", "schema_path", "write_schemas"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def schema_path(event_type: str, version: int) -> Path:
    return SCHEMA_DIR / f"{event_type}.v{version}.json"


def current_schema(model: type[EventBase]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    schema["$id"] = f"movieflix-lab/{schema_path(_type_of(model), model.SCHEMA_VERSION).name}"
    return schema


def _type_of(model: type[EventBase]) -> str:
    return str(model.model_fields["event_type"].default)


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def check_schemas() -> list[str]:
    """Problems: a model whose schema differs from its version's checked-in file."""
    problems = []
    for event_type, model in EVENT_MODELS.items():
        path = schema_path(event_type, model.SCHEMA_VERSION)
        if not path.is_file():
            problems.append(f"{path.name} is missing: run `python -m {__name__} write`")
        elif json.loads(path.read_text()) != current_schema(model):
            problems.append(
                f"{model.__name__} changed its JSON Schema but still says version "
                f"{model.SCHEMA_VERSION}: bump {model.__name__}.SCHEMA_VERSION (new fields "
                f"optional), then run `python -m {__name__} write`"
            )
    return problems


def write_schemas() -> list[Path]:
    """Write the schemas of the current versions that are not on disk yet."""
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, model in EVENT_MODELS.items():
        path = schema_path(event_type, model.SCHEMA_VERSION)
        schema = current_schema(model)
        if path.is_file():
            if json.loads(path.read_text()) != schema:
                raise SystemExit(
                    f"{path.name} exists with another schema: bump {model.__name__}.SCHEMA_VERSION"
                )
            continue
        path.write_text(_dump(schema))
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    from movieflix_lab.events.avro import check_avro_schemas, write_avro_schemas

    command = sys.argv[1] if len(sys.argv) > 1 else "check"
    if command == "write":
        for path in [*write_schemas(), *write_avro_schemas()]:
            print(f"wrote {path}")
    else:
        found = check_schemas() + check_avro_schemas()
        print("\n".join(found) or "schemas up to date")
        sys.exit(1 if found else 0)
