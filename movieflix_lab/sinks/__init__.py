"""Sinks of the stream apps' results: Parquet for notebooks, PostgreSQL for everyone else."""

from movieflix_lab.sinks.parquet import ParquetSink, read_results
from movieflix_lab.sinks.postgres import TABLES, PostgresSink, create_tables

__all__ = ["TABLES", "ParquetSink", "PostgresSink", "create_tables", "read_results"]
