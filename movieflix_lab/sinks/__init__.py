"""Sinks of the stream apps' results: Parquet for notebooks (and PostgreSQL)."""

from movieflix_lab.sinks.parquet import ParquetSink, read_results

__all__ = ["ParquetSink", "read_results"]
