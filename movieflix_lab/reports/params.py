"""A notebook's parameters (its ``parameters`` cell) and checking what a user passes."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from movieflix_lab.exceptions import MovieflixError

__all__ = ["Parameter", "ParameterError", "coerce", "notebook_parameters"]

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


class ParameterError(MovieflixError):
    """A parameter that is unknown or of the wrong type (nothing has run)."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    help: str


def notebook_parameters(path: Path) -> dict[str, Parameter]:
    """The typed parameters declared in ``path``'s cell tagged ``parameters``."""
    import papermill

    found = papermill.inspect_notebook(str(path))
    if not found:
        raise MovieflixError(f"{path.name} has no cell tagged `parameters`")
    parameters = {}
    for name, spec in found.items():
        kind = spec.get("inferred_type_name") or "None"
        if kind not in _TYPES:
            raise MovieflixError(
                f"{path.name}: parameter {name} needs a type annotation (int, float, str, bool)"
            )
        parameters[name] = Parameter(
            name, kind, ast.literal_eval(spec["default"]), spec.get("help", "")
        )
    return parameters


def _convert(parameter: Parameter, value: Any) -> Any:
    kind = _TYPES[parameter.type]
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise ValueError
    if kind is bool:
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError
    return kind(value)


def coerce(declared: dict[str, Parameter], given: dict[str, Any], notebook: str) -> dict[str, Any]:
    """Defaults overlaid with ``given`` (strings from the command line, or typed values),
    each converted to its declared type; unknown or ill-typed ones raise
    :class:`ParameterError` naming them."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(f"{p.name} ({p.type})" for p in declared.values())
        raise ParameterError(
            f"{notebook}: unknown parameter(s) {', '.join(unknown)}; known: {known}"
        )
    values = {name: p.default for name, p in declared.items()}
    problems = []
    for name, value in given.items():
        parameter = declared[name]
        try:
            values[name] = _convert(parameter, value)
        except (ValueError, TypeError):
            problems.append(f"{name} must be {parameter.type}, not {value!r}")
    if problems:
        raise ParameterError(f"{notebook}: " + "; ".join(problems))
    return values
