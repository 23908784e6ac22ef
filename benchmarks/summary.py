"""One table of every benchmark's latest results: ``reports/benchmarks/latest.{md,json}``.

    python benchmarks/summary.py      (the last step of ``make bench``)

Each row is a metric, its value, the anchor measured in the same run, their ratio and the
goal, with the benchmark it came from; the machines and times of the runs head the page.
"""

from __future__ import annotations

import json

from benchmarks.common import RESULTS_DIR, fmt

SKIP = {"latest"}


def main() -> None:
    results = []
    for path in sorted(RESULTS_DIR.glob("*.json")):
        if path.stem in SKIP:
            continue
        results.append(json.loads(path.read_text()))
    if not results:
        raise SystemExit("no benchmark results in reports/benchmarks/: run `make bench`")
    rows = [{"benchmark": r["benchmark"], **row} for r in results for row in r["rows"]]
    machines = {r["benchmark"]: r["machine"] for r in results}
    (RESULTS_DIR / "latest.json").write_text(
        json.dumps({"machines": machines, "rows": rows}, indent=2) + "\n"
    )
    lines = ["# Benchmarks: latest results", "", "| benchmark | measured | git | machine |",
             "|---|---|---|---|"]  # fmt: skip
    for name, m in machines.items():
        lines.append(f"| [{name}]({name}.md) | {m['measured_at']} | {m['git_sha']} | "
                     f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']} |")  # fmt: skip
    lines += ["", "| benchmark | metric | value | anchor (same run) | anchor value | ratio | goal |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        ratio = row.get("ratio")
        lines.append(
            f"| {row['benchmark']} | {row['metric']} | {fmt(row['value'])} {row.get('unit', '')} | "
            f"{row.get('anchor', '-')} | {fmt(row.get('anchor_value'))} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | {row.get('goal', '-')} |"
        )
    (RESULTS_DIR / "latest.md").write_text("\n".join(lines) + "\n")
    print(RESULTS_DIR / "latest.md")


if __name__ == "__main__":
    main()
