"""What 1% of malformed messages costs the analytics app: catch-up throughput, poisoned vs clean.

    python benchmarks/poison.py [--events 200000] [--poison 0.01]

Two brokers of the benchmark's own, one after the other, each with the same backlog of
``--events`` watch and search records (``stream_catchup.backlog``, same seed); the second
also has a ``--poison`` share of malformed messages interleaved (not JSON, binary, arrays,
events missing fields, unknown event types). The analytics app (at-least-once, Parquet on)
catches up on each; on the poisoned one every malformed message goes to ``dead-letters``.
Throughput counts the valid records. Anchor, in the same run: raw confluent-kafka consume +
decode of the clean backlog. Goal: poisoned >= 0.9 x clean.
Writes ``reports/benchmarks/poison.{json,md}``.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from benchmarks.common import own_broker, write_results
from benchmarks.stream_catchup import backlog, quix_catch_up, raw_consume
from movieflix_lab.config import PROJECT_ROOT, Settings
from movieflix_lab.kafka.client import consumer, watermarks

console = Console()


def _dead_letters(settings: Settings) -> int:
    reader = consumer(settings)
    try:
        return sum(
            high - low
            for low, high in (watermarks(reader, "dead-letters", p)
                              for p in range(settings.topic_partitions))
        )  # fmt: skip
    finally:
        reader.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--poison", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=2, help="catch-ups per backlog (best kept)")
    args = parser.parse_args()

    with own_broker(whole_history=True, stream_commit_interval_s=5.0) as settings:
        with console.status(f"clean backlog of {args.events:,} records…"):
            backlog(settings, args.events)
        with console.status("raw confluent-kafka…"):
            raw_s, counts = raw_consume(settings)
        valid = sum(counts.values())
        clean_runs = []
        for run in range(args.runs):  # each run a new consumer group: the whole backlog
            with console.status(f"analytics on the clean backlog ({run + 1}/{args.runs})…"):
                clean_runs.append(quix_catch_up(settings, "analytics", "at-least-once"))
        clean_s = min(clean_runs)
        console.print(f"clean: {valid:,} records in {clean_runs} s; raw {raw_s:.1f} s")
    with own_broker(whole_history=True, stream_commit_interval_s=5.0) as settings:
        with console.status(f"poisoned backlog ({args.poison:.1%} malformed)…"):
            poisoned = backlog(settings, args.events, poison=args.poison)
        poisoned_runs, letters_per_run = [], []
        for run in range(args.runs):
            before = _dead_letters(settings)
            with console.status(f"analytics on the poisoned backlog ({run + 1}/{args.runs})…"):
                poisoned_runs.append(quix_catch_up(settings, "analytics", "at-least-once"))
            letters_per_run.append(_dead_letters(settings) - before)
        poisoned_s, letters = min(poisoned_runs), min(letters_per_run)
        console.print(f"poisoned: {poisoned:,} malformed, dead letters per run "
                      f"{letters_per_run}, {poisoned_runs} s")  # fmt: skip
    raw, clean, dirty = valid / raw_s, valid / clean_s, valid / poisoned_s
    rows = [
        {"metric": "raw confluent-kafka consume + decode (clean)", "value": raw, "unit": "rec/s"},
        {"metric": "analytics catch-up, clean", "value": clean, "unit": "rec/s",
         "anchor": "raw consume", "anchor_value": raw, "ratio": clean / raw, "goal": "-"},
        {"metric": f"analytics catch-up, {args.poison:.0%} malformed", "value": dirty,
         "unit": "rec/s", "anchor": "analytics, clean", "anchor_value": clean,
         "ratio": dirty / clean, "goal": ">= 0.9"},
        {"metric": "malformed messages written / dead letters (fewest of a run)",
         "value": float(poisoned),
         "unit": "messages", "anchor": "dead letters", "anchor_value": float(letters),
         "ratio": letters / poisoned if poisoned else None, "goal": "1.00 (>= 1 at-least-once)"},
    ]  # fmt: skip
    notes = [
        f"Backlog: {counts['watch-history']:,} watch-history + {counts['search-events']:,} "
        "search-events records (6 partitions each), the same in both runs; the poisoned run "
        f"adds {poisoned:,} malformed messages on the same topics. Times run from launch until "
        "the group caught up (Quix's quiet period subtracted); throughput counts valid records.",
        f"Best of {args.runs} catch-ups per backlog (each a new consumer group): clean "
        f"{', '.join(f'{t:.1f}' for t in clean_runs)} s; poisoned "
        f"{', '.join(f'{t:.1f}' for t in poisoned_runs)} s.",
    ]
    path = write_results("poison", {"events": args.events, "poison": args.poison,
                                    "clean_s": clean_runs, "poisoned_s": poisoned_runs,
                                    "dead_letters_per_run": letters_per_run, "notes": notes},
                         rows)  # fmt: skip
    console.print(f"results in {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
