# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: MovieFlix Lab
#     language: python
#     name: movieflix-lab
# ---

# %% [markdown]
# # 04 · Pipeline health
# Throughput per topic, consumer lag of the stream apps over a short sampling period with each group's status as Burrow judges it, late events and dead letters (reads the configured Kafka cluster).

# %% tags=["parameters"]
# the input topics to measure throughput on, and the consumer groups to watch
topics: str = "user-interactions,watch-history,search-events,login-events"
groups: str = "movieflix-analytics,movieflix-fraud,movieflix-recs"
# consumer lag and status: how many samples, how far apart (seconds of wall-clock time)
samples: int = 10
interval_s: float = 2.0
max_records: int = 200000

# %%
from datetime import UTC, datetime

import polars as pl

from movieflix_lab import lab
from movieflix_lab.config import get_settings
from movieflix_lab.kafka.lag import watch_lag

lab.offline()
settings = get_settings()
print(f"Kafka at {settings.bootstrap_servers}")

# %% [markdown]
# ## Throughput: records per minute (record time) per topic

# %%
frames = []
for topic in topics.split(","):
    # Every record counts here, a malformed one too (the apps dead-letter those): unchecked.
    df = lab.read_topic(topic, max_records=max_records, validate=False)
    if df.height:
        frames.append(df.select(pl.from_epoch("_timestamp", time_unit="ms").dt.replace_time_zone("UTC").alias("time")).with_columns(pl.lit(topic).alias("topic")))
records = pl.concat(frames) if frames else pl.DataFrame(schema={"time": pl.Datetime("ms", "UTC"), "topic": pl.String})
per_minute = records.sort("time").group_by_dynamic("time", every="1m", group_by="topic").agg(pl.len().alias("records")).rename({"time": "window_start"})
per_topic = records.group_by("topic").agg(pl.len().alias("records")).sort("topic")
if per_minute.height:
    display(lab.window_series(per_minute, value="records", value_title="records per minute", color="topic",
                              time_title="minute (UTC, record time)", title="Records per minute, per topic",
                              caption="What each topic received per minute of record time: gaps are minutes without traffic."))
else:
    print("no records on the topics read")

# %% [markdown]
# ## Consumer lag over time

# %%
watched = [g for g in groups.split(",") if g]
watch = watch_lag(settings, watched, window=(samples - 1) * interval_s, interval=interval_s)
lags = [
    {"time": datetime.fromtimestamp(at, UTC), "group": part.group, "lag": lag}
    for part in watch.partitions
    for at, lag in zip(watch.sampled_at, part.lags, strict=False)
]
lag = pl.DataFrame(lags, schema={"time": pl.Datetime("us", "UTC"), "group": pl.String, "lag": pl.Int64}).group_by("time", "group").agg(pl.col("lag").sum()).sort("time")
if lag.height:
    display(lab.lag_over_time(lag, title=f"Consumer lag per group, {samples} samples {interval_s:g} s apart",
                              caption="Records each group has yet to read, summed over partitions: flat at 0 means caught up."))
    display(lab.table(lag.sort("group", "time").rename({"time": "sampled at", "lag": "lag (records)"}),
                      limit=30, caption="every sample"))
else:
    print("no committed consumer group among: " + ", ".join(watched))

# %% [markdown]
# ## Consumer status (Burrow's rules)
# Per partition, from the group's latest commits and the log ends sampled above: OK; WARN when the lag grew at every commit; STALL when the offset does not move while there is lag; STOP when the group stopped committing with lag; REWIND when an offset went back. A group is OK, WARN or ERR (any STOP, STALL or REWIND). `movieflix-lab lag --watch` gives the same over a longer window.

# %%
status = pl.DataFrame(
    [{"group": g.group, "status": g.status.value, "worst partition": g.worst.value, "lag (records)": g.lag,
      "partitions": len(g.partitions),
      "not OK": ", ".join(f"{p.topic}[{p.partition}] {p.status.value}" for p in g.partitions if p.status.value != "OK")}
     for g in watch.groups],
    schema={"group": pl.String, "status": pl.String, "worst partition": pl.String, "lag (records)": pl.Int64,
            "partitions": pl.Int64, "not OK": pl.String},
)
if status.height:
    display(lab.table(status, caption=f"each group's status over {len(watch.sampled_at)} samples"))
else:
    print("no committed consumer group among: " + ", ".join(watched))

# %% [markdown]
# ## Late events and dead letters

# %%
late = lab.read_topic("analytics.late-events", max_records=max_records)
dead = lab.read_topic("dead-letters", max_records=max_records)
print(f"{late.height} late events; {dead.height} dead letters")
if dead.height:
    display(lab.table(dead.with_columns(pl.col("origin").struct.field("topic").alias("origin topic"))
                      .group_by("origin topic", "error").agg(pl.len().alias("messages")).sort("messages", descending=True),
                      caption="dead letters by the topic they came from and why they were refused"))

# %%
final = lag.filter(pl.col("time") == pl.col("time").max()) if lag.height else lag
lab.key_numbers(records=per_topic.to_dicts(), late_events=late.height, dead_letters=dead.height,
                final_lag={r["group"]: r["lag"] for r in final.to_dicts()},
                status={g.group: g.status.value for g in watch.groups})
