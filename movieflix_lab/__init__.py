"""MovieFlix Lab: streaming analytics and ML research kit for MovieFlix's Kafka events."""

__all__ = ["__version__"]

__version__ = "0.1.0"
