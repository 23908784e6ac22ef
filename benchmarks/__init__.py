"""The benchmarks: run each from the project root, ``python -m benchmarks.NAME``."""
