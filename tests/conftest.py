"""The fixture plugins every test can use (Quix Streams' own layout: fixtures in modules of
their own, listed here), and the markers.

``integration``: the test needs a real service: a Kafka broker (the session's, or one of its
own) or PostgreSQL. Set here from the fixtures a test uses,
and by ``pytestmark`` in the modules that start a broker of their own. ``make test-fast``
runs the others: pure logic, no broker. ``slow``: over about 30 s (crash, catch-up and
end-to-end runs), set where it applies.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.postgres", "tests.fixtures.cluster"]

#: Fixtures that give a test a real service.
SERVICES = frozenset({"kafka", "clean_kafka", "empty_kafka", "cluster", "postgres",
                      "fresh_database", "module_database"})  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
