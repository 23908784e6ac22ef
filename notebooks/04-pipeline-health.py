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
# Throughput per topic, consumer lag of the stream apps over a short sampling period, late events and dead letters (reads the configured Kafka cluster).

# %% tags=["parameters"]
# the input topics to measure throughput on, and the consumer groups to watch
topics: str = "user-interactions,watch-history,search-events,login-events"
groups: str = "movieflix-analytics,movieflix-fraud,movieflix-recs"
# consumer lag: how many samples, how far apart (seconds of wall-clock time)
samples: int = 10
interval_s: float = 2.0
max_records: int = 200000

# %%
import time
from datetime import UTC, datetime

import polars as pl

from movieflix_lab import lab
from movieflix_lab.config import get_settings
from movieflix_lab.kafka.lag import consumer_lag

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
lags = []
for i in range(samples):
    now = datetime.now(UTC)
    for row in consumer_lag(settings, watched):
        lags.append({"time": now, "group": row.group, "lag": row.lag})
    if i < samples - 1:
        time.sleep(interval_s)
lag = pl.DataFrame(lags, schema={"time": pl.Datetime("us", "UTC"), "group": pl.String, "lag": pl.Int64}).group_by("time", "group").agg(pl.col("lag").sum()).sort("time")
if lag.height:
    display(lab.lag_over_time(lag, title=f"Consumer lag per group, {samples} samples {interval_s:g} s apart",
                              caption="Records each group has yet to read, summed over partitions: flat at 0 means caught up."))
    display(lab.table(lag.sort("group", "time").rename({"time": "sampled at", "lag": "lag (records)"}),
                      limit=30, caption="every sample"))
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
                final_lag={r["group"]: r["lag"] for r in final.to_dicts()})
