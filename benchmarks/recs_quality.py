"""Recommendation quality: ALS against the strongest simple baselines, on held-out data.

    python -m benchmarks.recs_quality [--movielens PATH] [--users 2000] [--days 14]

Scores ``eval recs`` (:func:`movieflix_lab.jobs.recs.run_recs_eval`) on the seeded
simulated history and, when given, on a MovieLens folder (raw or an ``import movielens``
output), each with the held-out liked movies as hits and with all held-out movies. The
anchors are the baselines of the same run — plain popularity, recent popularity and
item-kNN, each tuned on the validation split like ALS — and the ratio quoted is ALS's
NDCG@10 over the *best* of them. Writes ``reports/benchmarks/recs_quality.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.common import write_results
from movieflix_lab.jobs.recs import run_recs_eval

console = Console()
LABELS = {"popularity": "plain popularity", "recent_popularity": "recent popularity",
          "item_knn": "item-kNN"}  # fmt: skip


def _rows(name: str, relevant: str, report: dict[str, Any], goal: str) -> list[dict[str, Any]]:
    best = report["best_baseline"]
    rows = [{
        "metric": f"{name}, {relevant} held out: NDCG@10 of ALS (params {report['params']})",
        "value": report["ndcg@10"], "anchor": f"best baseline: {LABELS[best]} "
        f"{report['baselines'][best]['params']}", "anchor_value": report["baselines"][best]["ndcg@10"],
        "ratio": report["ndcg_ratio"], "goal": goal,
    }]  # fmt: skip
    for other, row in report["baselines"].items():
        if other != best:
            rows.append({"metric": f"{name}, {relevant}: NDCG@10 of ALS", "value": report["ndcg@10"],
                         "anchor": f"{LABELS[other]} {row['params']}", "anchor_value": row["ndcg@10"],
                         "ratio": report["ndcg@10"] / row["ndcg@10"] if row["ndcg@10"] else None})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movielens", type=Path, help="a MovieLens folder or its import")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=float, default=14.0)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {"runs": {}}
    datasets: list[tuple[str, Path | None, str]] = [
        (f"simulated ({args.users} users, {args.days:g} days, seed 42)", None, ">= 2x")
    ]
    if args.movielens:
        datasets.append((f"MovieLens {args.movielens.name}", args.movielens, ">= 1.3x"))
    for name, data, goal in datasets:
        for relevant in ("liked", "all"):
            started = time.perf_counter()
            evaluation = run_recs_eval(data=data, users=args.users, days=args.days,
                                       relevant=relevant)  # fmt: skip
            seconds = time.perf_counter() - started
            report = evaluation.metrics
            console.print(f"{name}, {relevant}: ALS {report['ndcg@10']:.4f}, best baseline "
                          f"{report['best_baseline']} {report['best_baseline_ndcg@10']:.4f} → "
                          f"{report['ndcg_ratio']}x ({seconds:.0f} s)")  # fmt: skip
            rows += _rows(name, relevant, report, goal if relevant == "liked" else "-")
            results["runs"][f"{name} / {relevant}"] = {
                "data": evaluation.data, "seconds": round(seconds, 1),
                "goals": [g.__dict__ for g in evaluation.goals],
                **{k: report[k] for k in ("ndcg@10", "best_baseline", "best_baseline_ndcg@10",
                                          "ndcg_ratio", "popularity_ndcg_ratio", "params",
                                          "users_evaluated", "relevant")},
                "baselines": {n: {"ndcg@10": r["ndcg@10"], "params": r["params"]}
                              for n, r in report["baselines"].items()},
            }  # fmt: skip
    results["notes"] = [
        "Quality, not speed: each ratio is ALS's held-out NDCG@10 over a baseline's in the same "
        "run, on the same split (each user's latest 20% of movies). Every model, ALS and each "
        "baseline, is tuned on a validation split carved out of the training part; the test "
        "part is never looked at. The goal column is issue 21's (ALS over the best baseline).",
    ]
    console.print(f"→ {write_results('recs_quality', results, rows)}")


if __name__ == "__main__":
    main()
