"""What a notebook read, for its report's manifest — and pinned reads, for re-running it.

The report runner sets two settings for the notebook's kernel (environment variables, read
by :mod:`movieflix_lab.config` like every other):

* ``MOVIEFLIX_LAB_RECORD`` — a JSON-lines file; every topic range read, model loaded and
  simulation seeded through :mod:`movieflix_lab.lab` appends one line to it.
* ``MOVIEFLIX_LAB_PINS`` — a JSON file ``{topic: {partition: [first, end]}}``; a topic read
  with a pin reads exactly those offsets (a re-run from a manifest sees the same records even
  if more arrived since).
* ``MOVIEFLIX_LAB_PROGRESS=0`` — no progress bars (a published page cannot show one).

Outside a report (a data scientist in JupyterLab) neither is set and nothing is written.
"""

from __future__ import annotations

import json
from typing import Any

from movieflix_lab.config import get_settings

__all__ = ["PINS_ENV", "PROGRESS_ENV", "RECORD_ENV", "key_numbers", "pinned", "record", "recorded"]

RECORD_ENV = "MOVIEFLIX_LAB_RECORD"
PINS_ENV = "MOVIEFLIX_LAB_PINS"
PROGRESS_ENV = "MOVIEFLIX_LAB_PROGRESS"

_recorded: list[dict[str, Any]] = []


def record(kind: str, **info: Any) -> None:
    entry = {"kind": kind, **info}
    _recorded.append(entry)
    target = get_settings().lab_record
    if target:
        with target.open("a") as out:
            out.write(json.dumps(entry, default=str) + "\n")


class KeyNumbers(dict[str, Any]):
    """The key numbers as a dict, shown in a notebook as a two-column table."""

    def _repr_html_(self) -> str:
        from movieflix_lab.lab.tables import table

        rows = [{"key number": k, "value": v} for k, v in self.items()]
        return table(rows, caption="key numbers (in the report's manifest)")._repr_html_()


def key_numbers(**values: Any) -> KeyNumbers:
    """A notebook's headline numbers: written into its report's manifest (a re-run from the
    manifest must reproduce them exactly). Returns them, for display."""
    record("key_numbers", values=values)
    return KeyNumbers(values)


def recorded() -> list[dict[str, Any]]:
    """This process's reads so far (a notebook can show them)."""
    return list(_recorded)


def pinned(topic: str) -> dict[int, tuple[int, int]] | None:
    source = get_settings().lab_pins
    if source is None or not source.is_file():
        return None
    pins = json.loads(source.read_text()).get(topic)
    if pins is None:
        return None
    return {int(p): (int(r[0]), int(r[1])) for p, r in pins.items()}
