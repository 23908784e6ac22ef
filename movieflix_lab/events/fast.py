"""The fast path of the codec: events in their canonical wire form, validated by msgspec.

:func:`~movieflix_lab.events.codec.decode` validates with the pydantic contracts, which
accept many spellings of an event (whitespace around ids, any time zone, upper-case UUIDs,
numbers in strings) and normalise them. What the kit's own gateway and simulator write is
the *canonical* form: exactly what :func:`~movieflix_lab.events.codec.encode` produces. This
module accepts only that form, checks it against the same contracts in C (msgspec structs
generated from the pydantic models: the same fields, types, bounds and patterns, unknown
fields refused), and returns what :func:`~movieflix_lab.events.codec.to_record` would (the same
keys and values; ``event_type`` comes last, which no reader of a dict or a JSON object
sees). What it
does not accept — an invalid event, or a valid one spelled another way — is not an error
here: :func:`decode_record` hands it to pydantic, which normalises it or names the field
that is wrong. So a record from any producer is validated in full; only the cost differs.

Why the two agree (``tests/test_events/test_fast.py`` checks each point, and a property
test compares both paths over the simulator's output, the schema examples and mutations of
them):

- strings: pydantic strips whitespace before checking a pattern or a length; the fast path
  refuses any string with whitespace at either end, so what it accepts is unchanged by the
  stripping. Patterns end in ``\\Z`` (Python's ``$`` also matches before a final newline).
- ``event_id``: only the lower-case, hyphenated spelling (what ``str(UUID)`` writes).
- ``timestamp``/``started_at``: only ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` with ASCII digits, a
  fraction of six digits that are not all zero (pydantic drops a zero fraction), and a real
  date and time (``datetime.fromisoformat``).
- ``ip``: only the spelling ``ipaddress`` gives back (IPv6 compressed, lower case).
- numbers: JSON integers for ``int`` fields (pydantic would also take ``"3"`` or ``3.0``);
  integers for ``float`` fields become floats, as in pydantic.
- the model-level rules (``schema_version`` not newer than the reader, ``failure_reason``
  only on a failed login, ``started_at`` not after ``timestamp``) are checked here too; a
  test fails when a contract gains a validator this module does not know.

Examples
--------
>>> record = fast_record(b'{"event_id":"5be52bca-0a40-4349-b454-df935ea7e54f","user_id":"u1",'
...                      b'"timestamp":"2026-11-29T18:00:07Z","event_type":"rate",'
...                      b'"movie_id":"m1","rating":4}')
>>> record["event_type"], record["schema_version"], record["timestamp"]
('rate', 1, '2026-11-29T18:00:07Z')
>>> fast_record(b'{"event_id":"5BE52BCA-0A40-4349-B454-DF935EA7E54F","user_id":"u1",'
...             b'"timestamp":"2026-11-29T18:00:07Z","event_type":"rate","movie_id":"m1",'
...             b'"rating":4}') is None  # valid, but not canonical: pydantic's to decide
True
"""

from __future__ import annotations

import ipaddress
import re
import types
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from operator import attrgetter
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

import annotated_types
import msgspec
import orjson
from pydantic import AwareDatetime, IPvAnyAddress
from pydantic.fields import FieldInfo

from movieflix_lab.events.models import EVENT_MODELS, EventBase

__all__ = [
    "KNOWN_MODEL_VALIDATORS",
    "WireEvent",
    "event_kind",
    "fast_batch",
    "fast_record",
    "fast_valid",
]

UUID_PATTERN = r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"
TIME_PATTERN = r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?Z\Z"
#: A string with no whitespace at either end (pydantic strips it: a stripped string is not
#: canonical). ``\s`` is Python's ``str.isspace``, a superset of what pydantic strips.
NO_EDGE_SPACE = r"\A\S(?:[\s\S]*\S)?\Z"
#: How many distinct passed strings a field's check remembers before it starts again.
MEMO_SIZE = 100_000
IP = "<ip address>"
INT64_MAX = 2**63 - 1

#: The model-level rules this module checks, per model (see :func:`_model_rules`).
KNOWN_MODEL_VALIDATORS = {
    name: {"_known_version", *extra}
    for name, extra in {
        "play": (), "pause": (), "seek": (), "stop": (), "rate": (), "search": (),
        "login": ("_reason_only_on_failure",), "watch": ("_started_before_end",),
    }.items()
}  # fmt: skip
KNOWN_FIELD_VALIDATORS = {"_not_a_number", "_to_utc"}


def _python_pattern(pattern: str) -> str:
    """A contract's pattern as Python's ``re`` must read it to mean the same."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    if pattern.startswith("^"):
        pattern = r"\A" + pattern[1:]
    return pattern


#: The contracts' bounds (annotated_types) and the msgspec ``Meta`` argument of each.
_BOUNDS = {annotated_types.Ge: "ge", annotated_types.Gt: "gt", annotated_types.Le: "le",
           annotated_types.Lt: "lt", annotated_types.MinLen: "min_length",
           annotated_types.MaxLen: "max_length"}  # fmt: skip


def _meta(info: FieldInfo) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for item in info.metadata:
        name = _BOUNDS.get(type(item))
        if name is not None:
            bounds[name] = getattr(item, name)
        elif getattr(item, "pattern", None) is not None:
            bounds["pattern"] = _python_pattern(item.pattern)
        else:
            raise TypeError(f"the fast path does not know the constraint {item!r}")
    return bounds


@lru_cache(maxsize=65_536)
def _canonical_ip(text: str) -> bool:
    try:
        return str(ipaddress.ip_address(text)) == text
    except ValueError:
        return False


#: The strings each memoised pattern passed, shared by the kinds (see :class:`_Strings`).
_PASSED: dict[str, set[str]] = {}


class _Strings:
    """The check of every string field of one kind that shares a pattern (a user's, a
    device's, a movie's and a session's ids share one): True when all are canonical.

    With ``memo`` the strings that passed are remembered (ids repeat), so most records pay
    one set lookup for all their ids instead of a regular expression per field.
    """

    def __init__(self, pattern: str, names: Sequence[str], memo: bool) -> None:
        self.names = tuple(names)
        self._get = attrgetter(*names)
        self._search = re.compile(pattern).search
        self._memo = _PASSED.setdefault(pattern, set()) if memo else None

    def __call__(self, item: Any) -> bool:
        values = self._get(item)
        if len(self.names) == 1:
            values = (values,)
        memo = self._memo
        if memo is not None and memo.issuperset(values):
            return True
        for text in values:
            if text is None:
                continue
            if self._search(text) is None:
                return False
            if memo is not None:
                if len(memo) >= MEMO_SIZE:
                    memo.clear()
                memo.add(text)
        return True


def _field_type(model: type[EventBase], name: str, info: FieldInfo) -> tuple[Any, str | None]:
    """The msgspec type of one contract field, and the pattern its string must match
    (raises on a type it does not know). Patterns are checked after decoding
    (:class:`_Strings`): in msgspec each would be a Python ``re`` call per field."""
    annotation = info.annotation
    bounds = _meta(info)
    if name == "schema_version":
        bounds["le"] = model.SCHEMA_VERSION
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            raise TypeError(f"{model.__name__}.{name}: the fast path reads one type or None")
        annotation, optional = members[0], True
    check: str | None = None
    if annotation is UUID:
        base: Any = Annotated[str, msgspec.Meta(min_length=36, max_length=36)]
        check = UUID_PATTERN
    elif annotation is AwareDatetime:
        base = Annotated[str, msgspec.Meta(min_length=20, max_length=27)]
    elif annotation is IPvAnyAddress:
        base = Annotated[str, msgspec.Meta(min_length=2, max_length=64)]
        check = IP
    elif annotation is str:
        check = bounds.pop("pattern", NO_EDGE_SPACE)
        base = Annotated[str, msgspec.Meta(**bounds)] if bounds else str
    elif annotation is int:
        # Within 64 bits: orjson (the gateway's encoder, Quix's JSON) refuses wider integers,
        # which pydantic's path writes; so those go to pydantic.
        bounds.setdefault("le", INT64_MAX)
        bounds.setdefault("ge", -INT64_MAX - 1)
        base = Annotated[int, msgspec.Meta(**bounds)]
    elif annotation is float:
        base = Annotated[float, msgspec.Meta(**bounds)] if bounds else float
    elif annotation is bool or get_origin(annotation) is Literal:
        base = annotation
    else:
        raise TypeError(f"{model.__name__}.{name}: the fast path does not know {annotation!r}")
    return (base | None if optional else base), check


def _struct(kind: str, model: type[EventBase]) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    patterns: dict[str, list[str]] = {}
    for name, info in model.model_fields.items():
        if name == "event_type":
            continue
        kind_of, check = _field_type(model, name, info)
        if check is not None:
            patterns.setdefault(check, []).append(name)
        if info.is_required():
            fields.append((name, kind_of))
        else:
            fields.append((name, kind_of, info.default))
    ips = patterns.pop(IP, [])
    CHECKS[kind] = [_Strings(p, names, memo=p != UUID_PATTERN) for p, names in patterns.items()]
    IP_FIELDS[kind] = tuple(ips)
    return msgspec.defstruct(
        f"Fast{model.__name__}",
        fields,
        tag_field="event_type",
        tag=kind,
        forbid_unknown_fields=True,
        kw_only=True,  # fields in the contract's order, defaults or not
    )


#: Each kind's string checks, in field order (filled as the structs are made).
CHECKS: dict[str, list[_Strings]] = {}
#: Each kind's IP address fields (checked by :func:`_canonical_ip`, memoised).
IP_FIELDS: dict[str, tuple[str, ...]] = {}
STRUCTS = {kind: _struct(kind, model) for kind, model in EVENT_MODELS.items()}
#: Each kind's fields that may be None (left out of the record, as ``exclude_none`` does).
OPTIONAL = {
    kind: tuple(name for name, info in model.model_fields.items()
                if not info.is_required() and info.default is None)
    for kind, model in EVENT_MODELS.items()
}  # fmt: skip
_ANY: Any = Union[tuple(STRUCTS.values())]  # noqa: UP007
_ONE: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_ANY)
_MANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Union[_ANY, list[_ANY]])  # noqa: UP007


class _Kind(msgspec.Struct):
    event_type: str = ""
    position_s: float | int | None = None


_KIND = msgspec.json.Decoder(_Kind)


def event_kind(data: bytes) -> tuple[str, float | int | None] | None:
    """``(event_type, position_s)`` read off the raw bytes without validating anything else
    (None when the bytes are no JSON object); for an app to drop what it never reads."""
    try:
        kind = _KIND.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return kind.event_type, kind.position_s


_TIME = re.compile(TIME_PATTERN).search


def _time(text: str) -> datetime | None:
    """A canonical time's value; None when it is not one pydantic would write back."""
    if _TIME(text) is None or (len(text) == 27 and text.endswith("000000Z")):
        return None  # pydantic writes a zero fraction as no fraction
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class WireEvent:
    """A valid event in its canonical form: the record, its bytes, its event time.

    What the gateway writes when the whole batch took the fast path; it has the attributes
    :func:`~movieflix_lab.kafka.event_writer.route` and the writer read from a model.
    """

    __slots__ = ("event_id", "event_type", "movie_id", "record", "timestamp_ms", "user_id")

    def __init__(self, record: dict[str, Any], timestamp_ms: int) -> None:
        self.record = record
        self.event_id: str = record["event_id"]
        self.event_type: str = record["event_type"]
        self.user_id: str = record["user_id"]
        self.movie_id: str | None = record.get("movie_id")
        self.timestamp_ms = timestamp_ms

    def encode(self) -> bytes:
        return orjson.dumps(self.record)


def _checked(item: Any) -> datetime | None:
    """The event time of a decoded canonical event whose strings and rules hold, else None."""
    kind = item.__struct_config__.tag
    stamp = _time(item.timestamp)
    if stamp is None:
        return None
    for check in CHECKS[kind]:
        if not check(item):
            return None
    for name in IP_FIELDS[kind]:
        if not _canonical_ip(getattr(item, name)):
            return None
    if kind == "login":
        if item.success and item.failure_reason is not None:
            return None
    elif kind == "watch":
        started = _time(item.started_at)
        if started is None or started > stamp:
            return None
    return stamp


def _record(item: Any) -> tuple[dict[str, Any], int] | None:
    stamp = _checked(item)
    if stamp is None:
        return None
    kind = item.__struct_config__.tag
    record: dict[str, Any] = msgspec.structs.asdict(item)
    record["event_type"] = kind
    for name in OPTIONAL[kind]:
        if record[name] is None:
            del record[name]
    return record, int(stamp.timestamp() * 1000)


def fast_record(data: bytes) -> dict[str, Any] | None:
    """The record of a canonical event (as ``to_record(decode(data))``), or None: not
    canonical, or invalid — :func:`~movieflix_lab.events.codec.decode_record` then asks
    pydantic."""
    try:
        item = _ONE.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    done = _record(item)
    return None if done is None else done[0]


def fast_valid(data: bytes) -> bool:
    """Whether ``data`` is a canonical valid event, without making its record (False: ask
    pydantic, which may still find it valid in another spelling)."""
    try:
        item = _ONE.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return _checked(item) is not None


def fast_batch(body: bytes) -> tuple[list[WireEvent], bool] | None:
    """One event or an array of events, parsed and validated in one pass:
    ``(events, was_an_array)``, or None when any item is not canonical (the caller then
    validates the body the full way, for the errors)."""
    try:
        parsed = _MANY.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # deep: not canonical
        return None
    items: Sequence[Any] = parsed if isinstance(parsed, list) else [parsed]
    events = []
    for item in items:
        done = _record(item)
        if done is None:
            return None
        events.append(WireEvent(*done))
    return events, isinstance(parsed, list)
