"""Avro from the same contracts: schemas, the single-object encoding, resolution by Avro's rules.

**Schemas.** Each event type and version has an Avro record schema,
``movieflix_lab/schemas/avro/<event_type>.v<N>.avsc``, generated from that version's checked-in
JSON Schema (:mod:`movieflix_lab.events.schemas`), so every version, old ones included, has
its Avro twin and the two cannot drift. ``schemas/avro/topics/<topic>.avsc`` is the union of
the current versions of the types a topic carries (what a registry would hold for the topic's
values). ``python -m movieflix_lab.events.schemas write`` writes both kinds; ``check`` (and
``tests/test_events/test_avro.py``) fails when a file differs from what the contracts give.

The types: ``event_id`` is a string with logical type ``uuid``; ``timestamp`` and
``started_at`` are longs with logical type ``timestamp-micros`` (the contracts keep
microseconds: ``timestamp-millis`` would change the event time of a record written with a
fraction, and so the windows it falls in); integers are ``long`` (zig-zag varints: a small
value takes one byte either way); numbers ``double``; a literal choice an ``enum``; an
optional field a union with ``null`` first, defaulting to null. Field order is the JSON
Schema's (alphabetical), for every version alike.

**Wire.** Avro's single-object encoding: the marker ``C3 01``, the writer schema's 64-bit
CRC-64-AVRO (Rabin) fingerprint of its Parsing Canonical Form, little-endian, then the
binary datum. A reader finds the writer's schema among every known version by the
fingerprint and resolves the datum into the current version's schema by Avro's rules
(fastavro): a version-1 login reads as a version-2 one with ``failure_reason`` null, as its
JSON does. The record is then validated against the contract as a JSON one is (Avro's types
do not carry the contracts' patterns and bounds), so a record has the same shape and the
same checks whichever format it came in.

**Evolution.** :func:`resolution_problems` applies Avro's resolution rules to a writer and a
reader schema and names every field that would not resolve; :func:`backward_problems` checks
the current version of a type against every older one (``BACKWARD_TRANSITIVE``), and also
refuses removing a field that had no default: the JSON contracts refuse unknown fields, and
a reader still on the older version could not fill it.

Examples
--------
>>> from movieflix_lab.events.codec import decode_record
>>> record = decode_record(b'{"event_id":"5be52bca-0a40-4349-b454-df935ea7e54f",'
...     b'"user_id":"u1","timestamp":"2026-11-29T18:00:07.250000Z","event_type":"rate",'
...     b'"movie_id":"m1","rating":4}')
>>> wire = encode_avro(record)
>>> wire[:2].hex(), len(wire) < len(orjson.dumps(record))
('c301', True)
>>> decode_avro(wire) == record
True
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import orjson
from fastavro.schema import fingerprint as _fingerprint
from fastavro.schema import to_parsing_canonical_form

from movieflix_lab.events.models import EVENT_MODELS

__all__ = [
    "AVRO_DIR",
    "MAGIC",
    "NAMESPACE",
    "TOPIC_EVENT_TYPES",
    "AvroSchemas",
    "avro_path",
    "avro_schema",
    "backward_problems",
    "check_avro_schemas",
    "decode_avro",
    "encode_avro",
    "fingerprint",
    "is_avro",
    "resolution_problems",
    "topic_schema",
    "write_avro_schemas",
]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
AVRO_DIR = SCHEMA_DIR / "avro"
NAMESPACE = "movieflix.events"
#: Avro's single-object encoding marker (spec: "Single-object encoding").
MAGIC = b"\xc3\x01"
HEADER = len(MAGIC) + 8

#: The event types each topic carries (the union its values are drawn from). The kafka
#: layer routes by the same table (``tests/test_events/test_avro.py`` checks they agree).
TOPIC_EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "user-interactions": ("play", "pause", "seek", "stop", "rate"),
    "watch-history": ("watch",),
    "search-events": ("search",),
    "login-events": ("login",),
}
#: Fields holding a date-time (a long of microseconds on the wire, an ISO string in a record).
TIME_FIELDS = ("timestamp", "started_at")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICRO = timedelta(microseconds=1)


# --- schemas ----------------------------------------------------------------------------


def _json_schema_path(event_type: str, version: int) -> Path:
    return SCHEMA_DIR / f"{event_type}.v{version}.json"


def avro_path(event_type: str, version: int) -> Path:
    return AVRO_DIR / f"{event_type}.v{version}.avsc"


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _avro_type(record: str, name: str, spec: dict[str, Any]) -> Any:
    """One JSON Schema property → its Avro type (see the module's docstring)."""
    options = spec.get("anyOf")
    if options is not None:
        kinds = [o for o in options if o.get("type") != "null"]
        if len(kinds) != 1 or len(options) != 2:
            raise ValueError(f"{record}.{name}: only `X | None` unions map to Avro")
        return ["null", _avro_type(record, name, kinds[0])]
    kind = spec.get("type")
    if "enum" in spec:
        return {"type": "enum", "name": f"{record}{_pascal(name)}", "symbols": list(spec["enum"])}
    if kind == "string":
        fmt = spec.get("format")
        if fmt == "uuid":
            return {"type": "string", "logicalType": "uuid"}
        if fmt == "date-time":
            return {"type": "long", "logicalType": "timestamp-micros"}
        return "string"
    simple = {"integer": "long", "number": "double", "boolean": "boolean"}
    if kind in simple:
        return simple[kind]
    raise ValueError(f"{record}.{name}: no Avro type for JSON Schema {spec}")


def avro_from_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The Avro record schema of one contract version, from its JSON Schema."""
    record = schema["title"]
    required = set(schema.get("required", ()))
    fields = []
    for name, spec in sorted(schema["properties"].items()):
        field: dict[str, Any] = {"name": name, "type": _avro_type(record, name, spec)}
        if "description" in spec:
            field["doc"] = spec["description"]
        if "default" in spec:
            field["default"] = spec["default"]
        elif name not in required:
            raise ValueError(f"{record}.{name}: optional without a default")
        fields.append(field)
    out: dict[str, Any] = {"type": "record", "name": record, "namespace": NAMESPACE}
    if "description" in schema:
        out["doc"] = schema["description"]
    out["fields"] = fields
    return out


def avro_schema(event_type: str, version: int) -> dict[str, Any]:
    """The Avro schema of ``event_type`` version ``version``, from its checked-in JSON Schema."""
    path = _json_schema_path(event_type, version)
    if not path.is_file():
        raise FileNotFoundError(f"no JSON Schema {path.name}: no such version")
    return avro_from_json_schema(json.loads(path.read_text()))


def _versions(event_type: str) -> list[int]:
    return sorted(int(p.name.split(".v")[1].split(".")[0])
                  for p in SCHEMA_DIR.glob(f"{event_type}.v*.json"))  # fmt: skip


def topic_schema(topic: str) -> list[dict[str, Any]]:
    """The union of the current versions of the types ``topic`` carries."""
    return [avro_schema(t, EVENT_MODELS[t].SCHEMA_VERSION) for t in TOPIC_EVENT_TYPES[topic]]


def _dump(schema: Any) -> str:
    return json.dumps(schema, indent=2) + "\n"


def _wanted() -> dict[Path, Any]:
    files: dict[Path, Any] = {}
    for event_type in EVENT_MODELS:
        for version in _versions(event_type):
            files[avro_path(event_type, version)] = avro_schema(event_type, version)
    for topic in TOPIC_EVENT_TYPES:
        files[AVRO_DIR / "topics" / f"{topic}.avsc"] = topic_schema(topic)
    return files


def check_avro_schemas() -> list[str]:
    """Problems: an Avro file missing, or not what its JSON Schema gives."""
    problems = []
    for path, schema in _wanted().items():
        name = path.relative_to(SCHEMA_DIR)
        if not path.is_file():
            problems.append(
                f"{name} is missing: run `python -m movieflix_lab.events.schemas write`"
            )
        elif json.loads(path.read_text()) != schema:
            problems.append(f"{name} differs from its JSON Schema: run `python -m "
                            "movieflix_lab.events.schemas write`")  # fmt: skip
    return problems


def write_avro_schemas() -> list[Path]:
    """Write every Avro file that is missing or out of date; the paths written.

    An Avro file only follows its JSON Schema, which is never rewritten for a version it
    already has (bump the version instead), so this never changes a published version."""
    written = []
    for path, schema in _wanted().items():
        if path.is_file() and json.loads(path.read_text()) == schema:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(schema))
        written.append(path)
    return written


def fingerprint(schema: dict[str, Any]) -> int:
    """The schema's CRC-64-AVRO fingerprint (of its Parsing Canonical Form).

    >>> hex(fingerprint({"type": "record", "name": "r", "fields": []}))
    '0x...'
    """
    return int(_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"), 16)


# --- evolution --------------------------------------------------------------------------

_PROMOTIONS = {("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
               ("long", "double"), ("float", "double"), ("string", "bytes"),
               ("bytes", "string")}  # fmt: skip


def _base(kind: Any) -> Any:
    """A type without its logical type (Avro resolves on the underlying type)."""
    if isinstance(kind, dict) and kind.get("type") not in ("record", "enum", "array", "map",
                                                           "fixed"):  # fmt: skip
        return kind["type"]
    return kind


def _type_problems(path: str, writer: Any, reader: Any) -> list[str]:
    writer, reader = _base(writer), _base(reader)
    if isinstance(writer, list):  # each branch the writer may have written must resolve
        return [p for branch in writer for p in _type_problems(path, branch, reader)][:1]
    if isinstance(reader, list):
        for branch in reader:
            if not _type_problems(path, writer, branch):
                return []
        return [f"{path}: written as {_name(writer)}, which the reader's union "
                f"{[_name(b) for b in reader]} cannot take"]  # fmt: skip
    if isinstance(writer, dict) or isinstance(reader, dict):
        if not isinstance(writer, dict) or not isinstance(reader, dict):
            return [f"{path}: type changed from {_name(writer)} to {_name(reader)}"]
        if writer["type"] != reader["type"]:
            return [f"{path}: type changed from {writer['type']} to {reader['type']}"]
        if writer["type"] == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                return [f"{path}: enum symbols {missing} removed (the reader has no default)"]
            return []
        if writer["type"] == "record":
            return resolution_problems(writer, reader, prefix=f"{path}.")
        return []
    if writer == reader or (writer, reader) in _PROMOTIONS:
        return []
    return [f"{path}: type changed from {_name(writer)} to {_name(reader)}, which Avro does "
            "not promote"]  # fmt: skip


def _name(kind: Any) -> str:
    return str(kind["type"] if isinstance(kind, dict) else kind)


def resolution_problems(writer: dict[str, Any], reader: dict[str, Any], *,
                        prefix: str = "") -> list[str]:  # fmt: skip
    """Why data written with ``writer`` would not read with ``reader`` (Avro's rules: a field
    the reader has and the writer lacks needs a default; a field both have must resolve;
    the writer's extra fields are skipped); empty when it reads."""
    problems = []
    written = {f["name"]: f for f in writer["fields"]}
    for field in reader["fields"]:
        name = field["name"]
        if name not in written:
            if "default" not in field:
                problems.append(f"{prefix}{name}: added without a default (data written "
                                "before it has no value for it)")  # fmt: skip
            continue
        problems += _type_problems(f"{prefix}{name}", written[name]["type"], field["type"])
    return problems


def backward_problems(event_type: str, reader: dict[str, Any] | None = None) -> list[str]:
    """What in ``reader`` (default: the current version's schema) breaks reading any older
    version of ``event_type``, each naming the field and the version; empty when none."""
    current = EVENT_MODELS[event_type].SCHEMA_VERSION
    reader = reader or avro_schema(event_type, current)
    problems = []
    for version in _versions(event_type):
        if version == current and reader == avro_schema(event_type, current):
            continue
        writer = avro_schema(event_type, version)
        found = resolution_problems(writer, reader)
        kept = {f["name"] for f in reader["fields"]}
        found += [
            f"{f['name']}: removed, and version {version} wrote it without a default"
            for f in writer["fields"]
            if f["name"] not in kept and "default" not in f
        ]
        problems += [f"{event_type} v{version}: {p}" for p in found]
    return problems


# --- the wire ---------------------------------------------------------------------------


def _reading(schema: Any) -> Any:
    """``schema`` without logical types: longs stay integers and uuids strings on the way
    through fastavro (the conversions to the record's form are done here, once)."""
    if isinstance(schema, list):
        return [_reading(s) for s in schema]
    if isinstance(schema, dict):
        if "logicalType" in schema and schema["type"] in ("long", "string"):
            return schema["type"]
        out = dict(schema)
        if "fields" in out:
            out["fields"] = [{**f, "type": _reading(f["type"])} for f in out["fields"]]
        return out
    return schema


@dataclass(frozen=True)
class _Version:
    event_type: str
    version: int
    parsed: Any  # fastavro's parsed writer schema (no logical types)
    current: bool


class AvroSchemas:
    """Every known version, by fingerprint; the current one of each type, for writing."""

    def __init__(self) -> None:
        self.by_fingerprint: dict[bytes, _Version] = {}
        self.readers: dict[str, Any] = {}
        self.writers: dict[str, tuple[bytes, Any, tuple[str, ...]]] = {}
        for event_type, model in EVENT_MODELS.items():
            for version in _versions(event_type):
                schema = avro_schema(event_type, version)
                parsed = fastavro.parse_schema(_reading(schema), _write_hint=False)
                key = fingerprint(schema).to_bytes(8, "little")
                is_current = version == model.SCHEMA_VERSION
                self.by_fingerprint[key] = _Version(event_type, version, parsed, is_current)
                if is_current:
                    self.readers[event_type] = parsed
                    names = tuple(f["name"] for f in schema["fields"])
                    self.writers[event_type] = (MAGIC + key, parsed, names)


@cache
def schemas() -> AvroSchemas:
    return AvroSchemas()


def is_avro(data: bytes) -> bool:
    """Whether ``data`` is in Avro's single-object encoding (JSON never starts so)."""
    return data[:2] == MAGIC


def _micros(text: str) -> int:
    return (datetime.fromisoformat(text) - _EPOCH) // _MICRO


def _iso(micros: int) -> str:
    """The canonical spelling :func:`~movieflix_lab.events.codec.encode` writes (a naive
    datetime's ``isoformat`` has exactly its fraction rule, and is far quicker than
    ``strftime``).

    >>> _iso(1_780_000_000_250_000), _iso(1_780_000_000_000_000)
    ('2026-05-28T20:26:40.250000Z', '2026-05-28T20:26:40Z')
    """
    return (_NAIVE_EPOCH + timedelta(microseconds=micros)).isoformat() + "Z"


def encode_avro(record: dict[str, Any]) -> bytes:
    """A valid event's record (:func:`~movieflix_lab.events.codec.to_record`'s form) in
    the single-object encoding of its type's current schema."""
    header, parsed, names = schemas().writers[record["event_type"]]
    datum = {name: record.get(name) for name in names}
    for name in TIME_FIELDS:
        text = datum.get(name)
        if text is not None:
            datum[name] = _micros(text)
    out = io.BytesIO()
    out.write(header)
    fastavro.schemaless_writer(out, parsed, datum)
    return out.getvalue()


def avro_event_type(data: bytes) -> str | None:
    """The event type an Avro message's fingerprint names, or None (not one we know)."""
    known = schemas().by_fingerprint.get(data[2:HEADER])
    return known.event_type if known is not None else None


def avro_json(data: bytes) -> bytes:
    """An Avro message as the JSON of its record, resolved into the current version.

    Raises ``ValueError`` naming the problem: an unknown fingerprint (a writer schema no
    version of the contracts has), or bytes that are not a datum of the schema named.
    """
    if len(data) < HEADER or not is_avro(data):
        raise ValueError("not an Avro single-object message (no C3 01 marker)")
    known = schemas().by_fingerprint.get(data[2:HEADER])
    if known is None:
        raise ValueError(
            f"unknown Avro schema fingerprint {data[2:HEADER][::-1].hex()}: no version of "
            "the contracts has it (written by a newer movieflix-lab, or not an event)"
        )
    stream = io.BytesIO(data)
    stream.seek(HEADER)
    try:
        if known.current:
            datum = fastavro.schemaless_reader(stream, known.parsed)
        else:
            datum = fastavro.schemaless_reader(stream, known.parsed,
                                               schemas().readers[known.event_type])  # fmt: skip
    except Exception as exc:  # fastavro raises what the bytes make it raise
        raise ValueError(f"undecodable Avro datum of {known.event_type} v{known.version}: "
                         f"{type(exc).__name__}: {exc}") from None  # fmt: skip
    if stream.tell() != len(data):
        raise ValueError(f"{len(data) - stream.tell()} bytes after the Avro datum of "
                         f"{known.event_type} v{known.version}")  # fmt: skip
    record = {k: v for k, v in datum.items() if v is not None}  # type: ignore[union-attr]
    for name in TIME_FIELDS:
        if name in record:
            try:
                record[name] = _iso(record[name])
            except (OverflowError, ValueError):
                raise ValueError(f"{name}: {record[name]} µs is no date-time") from None
    return orjson.dumps(record)


def decode_avro(data: bytes) -> dict[str, Any]:
    """An Avro message → the validated record (``decode_record`` of its JSON)."""
    from movieflix_lab.events.codec import decode_record

    return decode_record(data)
