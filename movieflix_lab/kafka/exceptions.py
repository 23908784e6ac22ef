"""Errors of the Kafka part: the local broker's lifecycle and reaching a cluster."""

from __future__ import annotations

from movieflix_lab.exceptions import MovieflixError

__all__ = [
    "BrokerError",
    "BrokerStartError",
    "ExternalClusterConfigured",
    "JavaNotFound",
    "KafkaUnavailable",
    "MavenNotFound",
    "TopicError",
]


class BrokerError(MovieflixError):
    """The local broker could not be managed."""


class JavaNotFound(BrokerError):
    """No Java 17+ runtime to run the broker with."""


class MavenNotFound(BrokerError):
    """No Maven to fetch the broker jars with."""


class BrokerStartError(BrokerError):
    """The broker process exited or did not answer in time."""


class ExternalClusterConfigured(BrokerError):
    """A local-broker command was asked for while an external cluster is configured."""


class KafkaUnavailable(MovieflixError):
    """No Kafka cluster answers at the configured bootstrap address."""


class TopicError(MovieflixError):
    """Creating, altering or describing a topic failed; ``retriable`` when Kafka says the
    same request may succeed later (a leader not yet elected on a fresh broker)."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable
