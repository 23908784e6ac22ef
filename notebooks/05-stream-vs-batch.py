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
# # 05 · Stream against batch
# Every window the analytics app closed, next to a batch computation over exactly the offsets its consumer group committed: the same events, counted in one polars pass with the kit's event-time rule (a record is late only if it is late in its own source partition's order). A difference is a bug; the late records explain why a batch value is below the raw count.

# %% tags=["parameters"]
# The analytics app's consumer group (empty: the configured prefix + "analytics")
group: str = ""
# where the stream results are read: "parquet" (data/processed) or "topic" (the derived topics)
stream: str = "parquet"
# the app's window shape and grace period (minutes)
window_minutes: int = 30
hop_minutes: int = 5
grace_minutes: float = 5.0


# %%
from datetime import timedelta

import altair as alt
import polars as pl

from movieflix_lab import lab
from movieflix_lab.config import get_settings
from movieflix_lab.lab.reconcile import analytics_specs, reconcile_analytics

lab.offline()
settings = get_settings()
group = group or f"{settings.stream_group_prefix}analytics"
specs = analytics_specs(timedelta(minutes=window_minutes), timedelta(minutes=hop_minutes),
                        timedelta(minutes=grace_minutes))
result = reconcile_analytics(settings, group=group, stream=stream, specs=specs)
for line in result.lines():
    print(line)


# %% [markdown]
# ## Per output

# %%
lab.table([{"output": c.spec.name, "windows closed": c.closed, "equal to batch": c.equal,
            "missing": c.missing, "records": c.records, "late records": c.late_records}
           for c in result.checks],
          caption="per output: windows the app closed, and how many equal the batch computation")


# %% [markdown]
# ## Every closed window: stream count against batch count
# Each point is one window of one key; on the diagonal the stream app counted exactly what the batch computation counts.

# %%
points = pl.concat([
    c.windows.filter(pl.col("stream_count").is_not_null())
    .select("window_start_ms", "stream_count", "batch_count", "status")
    .with_columns(output=pl.lit(c.spec.name))
    for c in result.checks])
top = max(int(points["batch_count"].max() or 1), int(points["stream_count"].max() or 1))
diagonal = alt.Chart(pl.DataFrame({"batch": [0, top], "stream": [0, top]}).to_pandas()).mark_line(
    color="grey", strokeDash=[4, 4]).encode(x="batch:Q", y="stream:Q")
dots = alt.Chart(points.to_pandas()).mark_point(filled=True, opacity=0.6).encode(
    x=alt.X("batch_count:Q", title="batch count (records per window)"),
    y=alt.Y("stream_count:Q", title="stream count (records per window)"),
    color=alt.Color("output:N", title="output"),
    shape=alt.Shape("status:N", title="status"))
(diagonal + dots).properties(width=520, height=320, title=lab.titled(
    "Stream against batch, one point per closed window",
    "On the dashed diagonal the stream app counted exactly what the batch computation counts."))


# %% [markdown]
# ## Windows that differ, and the late records of each output

# %%
differing = pl.concat([c.windows.filter(pl.col("status").is_in(["differs", "missing"]))
                       .select("window_start_ms", "batch_count", "stream_count", "late", "status")
                       .with_columns(output=pl.lit(c.spec.name)) for c in result.checks])
print(f"{differing.height} windows differ or are missing")
if differing.height:
    display(lab.table(differing.with_columns(window_start=pl.from_epoch("window_start_ms", time_unit="ms"))
                      .select("output", "window_start", pl.col("batch_count").alias("batch (records)"),
                              pl.col("stream_count").alias("stream (records)"), pl.col("late").alias("late (records)"), "status"),
                      limit=20, caption="windows where the stream and the batch disagree"))
late = pl.concat([c.windows.filter(pl.col("late") > 0).select("window_start_ms", "all_count", "late", "batch_count")
                  .with_columns(output=pl.lit(c.spec.name)) for c in result.checks])
late = late.with_columns(window_start=pl.from_epoch("window_start_ms", time_unit="ms").dt.replace_time_zone("UTC"))
if late.height:
    display(lab.table(late.sort("late", descending=True)
                      .select("output", "window_start", pl.col("all_count").alias("records in range"),
                              pl.col("late").alias("late records"), pl.col("batch_count").alias("counted (not late)")),
                      limit=10, caption="the windows with the most late records"))
else:
    print("no record was late: every record is in its window")


# %%
lab.key_numbers(**{c.spec.name: {"closed": c.closed, "equal": c.equal, "missing": c.missing,
                                  "late_records": c.late_records} for c in result.checks},
                reconciled=result.ok)

