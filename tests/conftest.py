from tests.fixtures import kafka, unique_topic

__all__ = ["kafka", "unique_topic"]
