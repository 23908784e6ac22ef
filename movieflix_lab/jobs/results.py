"""What the jobs judge: one :class:`Goal` type for every goal the kit checks, and turning a
job's typed result into JSON (the CLI's ``--json`` and the files the jobs write come from
the same objects the tables are drawn from)."""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["Goal", "all_met", "jsonable"]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclasses.dataclass(frozen=True)
class Goal:
    """A goal the kit judges: ``value`` against ``target``, and whether it is ``met``.

    >>> Goal.check("alert latency p99 ms", 412.0, "<", 1000)
    Goal(name='alert latency p99 ms', target='< 1000', value=412.0, met=True)
    >>> Goal.check("recall", None, ">=", 0.99).met
    False
    """

    name: str
    #: The comparison as read: ``">= 0.99"``, ``"< 1000"``, ``"== 0"``.
    target: str
    value: float | int | None
    met: bool

    @classmethod
    def check(
        cls, name: str, value: float | int | None, op: str, bound: float, unit: str = ""
    ) -> Goal:
        """Judge ``value op bound``; a missing or NaN value never meets a goal."""
        compare = _COMPARE[op]
        known = value is not None and not (isinstance(value, float) and math.isnan(value))
        return cls(name, f"{op} {bound:g}{unit}", value, bool(known and compare(value, bound)))


def all_met(goals: Iterable[Goal]) -> bool:
    return all(goal.met for goal in goals)


def jsonable(value: Any) -> Any:
    """A dataclass result (nested ones, paths, tuples and counters included) as plain JSON
    data; an object with ``as_dict()`` is asked for its own form."""
    if hasattr(value, "as_dict") and not isinstance(value, type):
        return jsonable(value.as_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
