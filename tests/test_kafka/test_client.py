import pytest

from movieflix_lab.config import Settings
from movieflix_lab.kafka.client import murmur2, partition_for_key, producer_config

# Kafka's own vectors (clients' UtilsTest.testMurmur2), as signed Java ints.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "expected"), JAVA_MURMUR2.items())
def test_murmur2_matches_the_java_client(data: bytes, expected: int) -> None:
    signed = murmur2(data) - (1 << 32) if murmur2(data) >= 1 << 31 else murmur2(data)
    assert signed == expected


def test_partitions_are_spread_and_in_range() -> None:
    partitions = [partition_for_key(f"u{i}", 6) for i in range(6000)]
    assert set(partitions) == set(range(6))
    assert min(partitions.count(p) for p in range(6)) > 800  # roughly uniform


def test_producers_are_durable_and_java_compatible() -> None:
    config = producer_config(Settings(kafka_bootstrap="k:9092"))
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
    assert config["partitioner"] == "murmur2_random"
