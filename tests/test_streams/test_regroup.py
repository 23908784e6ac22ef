"""Re-keying without replayed double counts (pure logic: no broker).

The crash tests in ``test_recovery.py`` check the same thing end to end under at-least-once.
"""

from __future__ import annotations

from contextvars import copy_context
from datetime import timedelta
from typing import Any

from quixstreams.context import set_message_context
from quixstreams.models import MessageContext

from movieflix_lab.streams.regroup import SOURCE_HEADER, FirstDelivery, Replays, _stamp, source_of


class DictState:
    """One key's state, as Quix hands it to a stateful callback (bytes kept as written)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.ttls: list[timedelta | None] = []

    def get_bytes(self, key: str, default: bytes | None = None) -> bytes | None:
        return self.values.get(key, default)

    def set_bytes(self, key: str, value: bytes, ttl: timedelta | None = None) -> None:
        self.values[key] = value
        self.ttls.append(ttl)


def _stamped(topic: str, partition: int, offset: int, headers: list[Any]) -> list[Any]:
    def run() -> list[Any]:
        set_message_context(MessageContext(topic, partition, offset, 10))
        return _stamp({"genre": "drama"}, "u1", 0, headers)

    return copy_context().run(run)


def test_stamp_names_the_source_and_replaces_an_older_stamp() -> None:
    headers = _stamped("watch-history", 4, 1041, [("trace", b"x")])
    assert headers == [("trace", b"x"), (SOURCE_HEADER, b"watch-history/4/1041")]
    again = _stamped("repartition-x", 0, 7, headers)  # re-keyed twice: the nearest source wins
    assert again == [("trace", b"x"), (SOURCE_HEADER, b"repartition-x/0/7")]
    assert source_of(again) == ("repartition-x/0", 7)


def test_a_replayed_copy_is_dropped_and_counted_per_source_partition() -> None:
    replays = Replays()
    keep = FirstDelivery(replays, ttl=timedelta(days=7))
    drama = DictState()

    def feed(partition: int, offset: int, state: DictState = drama) -> bool:
        headers = [(SOURCE_HEADER, f"watch-history/{partition}/{offset}".encode())]
        return keep({}, "drama", 0, headers, state)  # type: ignore[arg-type]

    # First deliveries, two source partitions interleaved (as they meet after a re-key).
    assert [feed(0, 10), feed(1, 3), feed(0, 11), feed(1, 4), feed(0, 12)] == [True] * 5
    # Partition 0 crashed after committing 10: its replay re-keys 11 and 12 again, then goes on.
    assert [feed(0, 11), feed(0, 12), feed(0, 13)] == [False, False, True]
    # Partition 1's marks are its own.
    assert feed(1, 5)
    assert replays.dropped == 2
    marks = {name: int.from_bytes(raw, "big") for name, raw in drama.values.items()}
    assert marks == {"regroup:watch-history/0": 13, "regroup:watch-history/1": 5}
    assert set(drama.ttls) == {timedelta(days=7)}
    # Another key (its own state) has seen nothing yet: the same source offset is new there.
    assert feed(0, 12, DictState())
    # A record without a stamp (re-keyed by something else) is kept and leaves no mark.
    unstamped = DictState()
    assert keep({}, "drama", 0, None, unstamped)  # type: ignore[arg-type]
    assert unstamped.values == {} and replays.dropped == 2
