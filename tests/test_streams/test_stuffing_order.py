"""Credential stuffing by IP whatever order the login partitions are read in (no broker).

The fraud app re-keys logins by IP: one IP's attempts reach its partition from every login
partition, in the order the consumer happened to fetch them. Here one partition (with a
login hours after the attack) is read to its end before the other: the rule's memory must
not forget attempts the unread partition can still match, so the alert is the batch run's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from movieflix_lab.fraud import FraudDetector
from movieflix_lab.fraud.rules import event_time_ms
from movieflix_lab.streams.fraud import FraudApp, FraudOptions
from movieflix_lab.streams.watermarks import NEVER, WM_HEADER, encode_stamp
from tests.fixtures.events import login
from tests.test_streams.test_panes import DictState, DictStore

IP = "203.0.113.7"


def _partitions() -> list[list[dict[str, Any]]]:
    """Two login partitions, 30 accounts each tried from one IP within 5 minutes (60 in
    all: over the rule's 50), and a login from that IP three hours later in the first."""
    first = [login(f"a{i}", timedelta(seconds=10 * i), ip=IP, success=False) for i in range(30)]
    first.append(login("later", timedelta(hours=3), ip=IP))
    second = [login(f"b{i}", timedelta(seconds=10 * i + 5), ip=IP, success=False)
              for i in range(30)]  # fmt: skip
    return [first, second]


def _stuffing(alerts: list[Any]) -> set[tuple[str, str]]:
    return {(a["detector"], a["entity_id"]) for a in alerts
            if a["detector"] == "credential_stuffing"}  # fmt: skip


def test_stuffing_is_caught_when_one_partition_is_read_before_the_other() -> None:
    partitions = _partitions()
    everything = sorted((e for p in partitions for e in p), key=event_time_ms)
    batch = _stuffing([a.as_record() for a in FraudDetector(model=None).run(everything)])
    assert batch == {("credential_stuffing", IP)}

    app = FraudApp(detector=FraudDetector(model=None), options=FraudOptions())
    store, alerts = DictStore(), []
    for partition, events in enumerate(partitions):  # the first read to its end first
        before = NEVER
        for event in events:
            ts = event_time_ms(event)
            headers = [(WM_HEADER, encode_stamp(before, partition, len(partitions)))]
            alerts += app.on_ip_login(event, IP, ts, headers, DictState(store, IP))
            before = max(before, ts)
    assert _stuffing(alerts) == batch

    # The horizon the app used before the watermark, the newest attempt read, forgets the
    # first partition's accounts once it has read the later login: no alert.
    detector, memory, missed = FraudDetector(model=None), {}, []
    for event in (e for p in partitions for e in p):
        missed += detector.ip_step(memory, event, event_time_ms(event), 0)
    assert not _stuffing([a.as_record() for a in missed])
