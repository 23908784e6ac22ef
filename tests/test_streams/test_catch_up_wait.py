"""Waiting for an app to catch up outlasts a broker still electing its partitions' leaders."""

from __future__ import annotations

import pytest

from movieflix_lab.config import Settings
from movieflix_lab.kafka.exceptions import TopicError
from movieflix_lab.streams import runner


def test_a_retriable_error_is_polled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[TopicError | int] = [TopicError("Not leader for partition", retriable=True), 5, 0]

    def outstanding(*_: object) -> int:
        answer = answers.pop(0)
        if isinstance(answer, TopicError):
            raise answer
        return answer

    monkeypatch.setattr(runner, "outstanding", outstanding)
    monkeypatch.setattr(runner.time, "sleep", lambda _: None)
    assert runner.wait_for_catch_up(Settings(), "analytics", timeout=30) == 0
    assert answers == []


def test_another_error_is_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def outstanding(*_: object) -> int:
        raise TopicError("Group authorization failed")

    monkeypatch.setattr(runner, "outstanding", outstanding)
    with pytest.raises(TopicError, match="authorization"):
        runner.wait_for_catch_up(Settings(), "analytics", timeout=30)
