"""An exactly-once checkpoint's commit has a deadline, and missing it restarts the run.

librdkafka's ``send_offsets_to_transaction`` without a timeout waited for minutes after a
node's loss (``tests/test_reliability/test_cluster_streams.py`` met it); these are the two
pieces that turn that wait into a restart, checked without a broker.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException
from quixstreams.internal_producer import KafkaProducerTransactionCommitFailed

from movieflix_lab.config import Settings
from movieflix_lab.streams.app import bound_commits
from movieflix_lab.streams.runner import transient


class Commits:
    """Records the timeouts its commits are given."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def commit_transaction(self, positions: Any, group_metadata: Any,
                           timeout: float | None = None) -> None:  # fmt: skip
        self.timeouts.append(timeout)


def test_a_commit_without_a_timeout_gets_the_deadline() -> None:
    producer = Commits()
    bound_commits(producer, Settings().stream_transaction_commit_timeout_s)
    producer.commit_transaction([], None, timeout=None)  # Quix's checkpoint, off the revoke path
    producer.commit_transaction([], None, timeout=4.5)  # the revoke path's own budget
    producer.commit_transaction([], None)
    assert producer.timeouts == [60.0, 4.5, 60.0]


def test_a_commit_that_timed_out_restarts_the_run() -> None:
    timed_out = KafkaException(KafkaError(KafkaError._TIMED_OUT))
    try:
        raise KafkaProducerTransactionCommitFailed("All Kafka attempts failed") from timed_out
    except KafkaProducerTransactionCommitFailed as failed:
        assert transient(failed)
    refused = KafkaException(KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED))
    try:
        raise KafkaProducerTransactionCommitFailed("All Kafka attempts failed") from refused
    except KafkaProducerTransactionCommitFailed as failed:
        assert not transient(failed)
