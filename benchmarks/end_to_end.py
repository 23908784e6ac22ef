"""End to end: the highest rate the whole pipeline sustains — gateway → Kafka → every stream app.

    python -m benchmarks.end_to_end [--rates 1000,2000,3000,4000,5000,6000] [--seconds 45]
                                    [--python-load]

On a broker of the benchmark's own, for each offered rate: the gateway and the three stream
apps (analytics, fraud, recs) start as child processes, and traffic goes through the
gateway for ``--seconds`` (``movieflix_lab.jobs.soak`` without a burst), sent by vegeta
(:mod:`benchmarks.loadgen`; the Python generator with ``--python-load`` or without Go);
each app's consumer lag is sampled every 2 s. A rate is *sustained* when the gateway
accepted ≥ 0.95 of it and no app fell more than 5 s behind after warm-up (its lag in
records over the rate). The goal: the best sustained rate ≥ 0.33 of the anchor.

Anchor, in the same run (last, so the apps never read its events): raw confluent-kafka —
one producer writing simulated pre-encoded events as fast as it can, three consumer groups
(as many as the apps) reading and decoding them from where the topics ended; events/s from
the first write until all three read the last.
Writes ``reports/benchmarks/end_to_end.{json,md}``.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

from confluent_kafka import TopicPartition
from rich.console import Console

from benchmarks.common import free_port, own_broker, write_results
from benchmarks.loadgen import VegetaTraffic, describe, vegeta
from movieflix_lab.config import PROJECT_ROOT, Settings
from movieflix_lab.events import decode_record, encode
from movieflix_lab.jobs.soak import SoakOptions, run_soak
from movieflix_lab.kafka.client import consumer, producer
from movieflix_lab.kafka.event_writer import route
from movieflix_lab.simulate import SimulationConfig, Simulator

console = Console()
LAG_GOAL_S = 5.0


def raw_pipeline(settings: Settings, count: int) -> float:
    """Events/s: one producer, three consumer groups decoding, first write → last read."""
    config = SimulationConfig(seed=9, users=5000, minutes=None, events=count, activity=20)
    events = [(route(e, lambda _: settings.topic_partitions), encode(e))
              for e in Simulator(config).events()]  # fmt: skip
    topics = sorted({where.topic for where, _ in events})
    done = [0, 0, 0]

    def read(slot: int) -> None:
        reader = consumer(settings, group_id=f"bench-e2e-raw-{uuid.uuid4().hex[:6]}-{slot}",
                          **{"auto.offset.reset": "earliest"})  # fmt: skip
        reader.subscribe(topics)
        while not reader.assignment():
            reader.consume(1, timeout=0.2)
        # Past what the pipeline runs wrote before: from the current end, only these events.
        for tp in reader.assignment():
            _, high = reader.get_watermark_offsets(tp, timeout=10)
            reader.seek(TopicPartition(tp.topic, tp.partition, high))
        ready.wait()
        deadline = time.monotonic() + 600
        while done[slot] < len(events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw reader {slot}: {done[slot]} of {len(events)} in 10 min")
            for message in reader.consume(1000, timeout=0.5):
                if message.error() is None:
                    decode_record(message.value())
                    done[slot] += 1
        reader.close()

    ready = threading.Event()
    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(3)]
    for thread in readers:
        thread.start()
    time.sleep(5)  # the groups have joined and sit at the end
    out = producer(settings, **{"linger.ms": 5})
    started = time.perf_counter()
    ready.set()
    for n, (where, value) in enumerate(events):
        kwargs = {"partition": where.partition} if where.partition is not None else {}
        while True:
            try:
                out.produce(where.topic, key=where.key, value=value, **kwargs)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                out.poll(0.05)
        if n % 5000 == 0:
            out.poll(0)
    out.flush(60)
    for thread in readers:
        thread.join()
    return len(events) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="1000,2000,3000,4000,5000,6000")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--python-load", action="store_true",
                        help="load with the Python generator, not vegeta")  # fmt: skip
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    steps = []
    binary = None if args.python_load else vegeta()
    traffic = (
        (lambda url, options, key: VegetaTraffic(binary, url, options, key)) if binary else None
    )
    with own_broker(whole_history=True, stream_commit_interval_s=5.0) as base:
        settings = Settings(**{**base.model_dump(), "gateway_port": free_port(),
                               "stream_commit_interval_s": 1.0})  # fmt: skip
        for rate in rates:
            options = SoakOptions(minutes=args.seconds / 60, rate=rate, burst_factor=1.0,
                                  burst_s=1.0, batch=100, sample_s=2.0)  # fmt: skip
            with console.status(f"{rate:,.0f} events/s through the gateway…"):
                result = run_soak(settings, options, make_traffic=traffic)
            settled = [s for s in result.samples if s["phase"] not in ("warm-up", "drain")]
            # Each app's worst lag in seconds, and the cores each process used meanwhile.
            by_app = {app: max(s["lag"][app] for s in settled) / rate
                      for app in (settled[0]["lag"] if settled else {})}  # fmt: skip
            worst = max(by_app, key=lambda app: by_app[app]) if by_app else "-"
            behind = by_app.get(worst, 0.0)
            span = settled[-1]["t"] - settled[0]["t"] if len(settled) > 1 else 0.0
            cores = {role: round((settled[-1]["cpu_s"][role] - used) / span, 2)
                     for role, used in settled[0]["cpu_s"].items()} if span else {}  # fmt: skip
            if span:  # the load generator (vegeta, or this process), then the rest
                load_key = "load_cpu_s" if settled[0]["load_cpu_s"] is not None else "self_cpu_s"
                role = (
                    "load (vegeta)" if load_key == "load_cpu_s" else "load (Python, this process)"
                )
                cores[role] = round((settled[-1][load_key] - settled[0][load_key]) / span, 2)
                busy = (settled[-1]["machine_busy_s"] - settled[0]["machine_busy_s"]) / span
                cores["broker, OS"] = round(max(busy - sum(cores.values()), 0.0), 2)
            accepted = result.accepted / options.seconds
            sustained = accepted >= 0.95 * rate and behind <= LAG_GOAL_S and not result.errors
            steps.append({"rate": rate, "accepted_per_s": round(accepted, 1),
                          "max_app_lag_s": round(behind, 2), "behind_s": {app: round(s, 2) for app, s in by_app.items()},
                          "worst_app": worst, "cores": cores, "max_lag": result.max_lag,
                          "drained_after_s": result.drained_after_s, "errors": result.errors,
                          "rss_mb": result.samples[-1]["rss_mb"] if result.samples else {},
                          "sustained": sustained})  # fmt: skip
            console.print(f"  {rate:,.0f}/s: accepted {accepted:,.0f}/s, worst app ({worst}) "
                          f"{behind:.1f} s behind, drained in {result.drained_after_s} s → "
                          f"{'sustained' if sustained else 'not sustained'}; cores {cores}")  # fmt: skip
        # The anchor last, on the same broker: the apps never see its events.
        with console.status("anchor: raw confluent-kafka, 1 producer → 3 groups…"):
            raw = raw_pipeline(settings, 200_000)
        console.print(f"raw confluent-kafka pipeline: {raw:,.0f} events/s")
    best = max((s["accepted_per_s"] for s in steps if s["sustained"]), default=0.0)
    rows = [
        {"metric": "raw confluent-kafka: 1 producer → 3 consumer groups (decode)", "value": raw,
         "unit": "events/s"},
        {"metric": f"end to end sustained (gateway → 3 stream apps, lag ≤ {LAG_GOAL_S:g} s)",
         "value": best, "unit": "events/s", "anchor": "raw confluent-kafka pipeline",
         "anchor_value": raw, "ratio": best / raw if raw else None,
         "goal": "ratio >= 0.33"},
        *({"metric": f"offered {s['rate']:,.0f}/s: accepted; worst app ({s['worst_app']}) "
                     f"behind {s['max_app_lag_s']} s", "value": s["accepted_per_s"],
           "unit": "events/s", "goal": "sustained" if s["sustained"] else "not sustained"}
          for s in steps),
        *({"metric": f"offered {s['rate']:,.0f}/s: cores used, "
                     + ", ".join(f"{role} {n:.2f}" for role, n in s["cores"].items()),
           "value": sum(s["cores"].values()), "unit": "cores (of 2)"}
          for s in steps if s["cores"]),
        *({"metric": f"CPU per event at {top['rate']:,.0f}/s (the best sustained), {role}",
           "value": n / top["accepted_per_s"] * 1e6, "unit": "µs"}
          for top in [max((s for s in steps if s["sustained"] and s["cores"]),
                          key=lambda s: s["accepted_per_s"], default=None)] if top
          for role, n in top["cores"].items()),
    ]  # fmt: skip
    notes = [
        "Everything on one 2-core machine: the broker (JVM), the gateway (1 uvicorn worker), "
        "the three stream apps (one process each), and the traffic generator (simulated "
        "events stamped with their planned sending time, POSTed in batches of 100). Lag is "
        "sampled every 2 s per app (repartition topics included); behind = lag / rate. Cores: "
        "CPU seconds each process used over the settled phase, per second; 'broker, OS' is "
        "the rest of the machine's busy time (the broker's JVM, the kernel).",
        describe(binary),
    ]
    path = write_results("end_to_end", {"rates": rates, "seconds": args.seconds,
                                        "steps": steps, "notes": notes}, rows)  # fmt: skip
    console.print(f"results in {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
