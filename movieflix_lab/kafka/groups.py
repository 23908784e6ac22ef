"""Consumer-group primitives: where a new group starts, waiting until it has members, and
removing what a group of a job's own left behind."""

from __future__ import annotations

import logging
import time

from confluent_kafka import TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.kafka.client import admin_client, consumer, watermarks

__all__ = ["delete_group", "start_group_at_end", "wait_for_members"]

logger = logging.getLogger(__name__)


def start_group_at_end(settings: Settings, group: str, topics: tuple[str, ...]) -> None:
    """Commit ``group``'s offsets at the current end of ``topics``: it reads only what follows."""
    client = consumer(settings, group)
    try:
        metadata = client.list_topics(timeout=10)
        offsets = []
        for topic in topics:
            for p in metadata.topics[topic].partitions:
                high = watermarks(client, topic, p)[1]
                offsets.append(TopicPartition(topic, p, high))
        client.commit(offsets=offsets, asynchronous=False)
    finally:
        client.close()


def wait_for_members(
    settings: Settings, group: str, timeout: float, *, what: str = "the app"
) -> None:
    """Return once ``group`` is stable with partitions assigned; raise after ``timeout`` s."""
    admin = admin_client(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = admin.describe_consumer_groups([group])[group].result(10)
        assigned = sum(len(m.assignment.topic_partitions) for m in described.members)
        if str(described.state).endswith("STABLE") and assigned:
            return
        time.sleep(0.5)
    raise MovieflixError(f"{what} did not join consumer group {group} within {timeout} s")


def delete_group(settings: Settings, group: str) -> None:
    """Remove what a Quix app's consumer group left on the cluster: its internal topics
    (changelogs, repartitions) and its committed offsets. Failures are logged, not raised:
    tidying must not hide the result of the job that ran."""
    admin = admin_client(settings)
    internal = [
        name
        for name in admin.list_topics(timeout=10).topics
        if name.startswith((f"changelog__{group}--", f"repartition__{group}--"))
    ]
    futures = list(admin.delete_topics(internal).values()) if internal else []
    futures += list(admin.delete_consumer_groups([group]).values())
    for future in futures:
        try:
            future.result(30)
        except Exception as exc:  # leave it: the report matters more than the tidying
            logger.warning("could not remove %s's leftovers: %s", group, exc)
