"""The fixture plugins every test can use (Quix Streams' own layout: fixtures in modules of
their own, listed here)."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.postgres", "tests.fixtures.streams"]
