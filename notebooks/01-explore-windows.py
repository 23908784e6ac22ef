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
# # 01 · Explore windows
# Average watch time per genre and search volume in windows of several sizes, side by side, and the events that arrive after their window closed.

# %% tags=["parameters"]
# Where the events come from: "simulate" (a seeded simulation, no Kafka) or "topic" (watch-history and search-events)
source: str = "simulate"
seed: int = 42
users: int = 500
minutes: float = 240.0
activity: float = 4.0
# simulate only: when the simulated evening starts (fixed, so a re-run gives the same events)
sim_start: str = "2026-11-01T18:00:00+00:00"
# topic only: an event-time range (ISO 8601; empty = everything)
start: str = ""
end: str = ""
# window sizes in minutes, compared side by side; the hop of the hopping window
windows: str = "5,15,30"
hop_minutes: int = 5
# lateness allowed before an event counts as late (minutes)
grace_minutes: float = 5.0

# %%
from datetime import datetime

import polars as pl

from movieflix_lab import lab

lab.offline()
sizes = [int(w) for w in windows.split(",")]
if source == "simulate":
    frames, _ = lab.simulate_events(seed, users, minutes, activity=activity, incident_rates={},
                                    start=datetime.fromisoformat(sim_start))
    watch, search = frames["watch"], frames["search"]
elif source == "topic":
    def events(topic):
        df = lab.read_topic(topic, start=start or None, end=end or None)
        return df.with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC")).sort("_partition", "_offset")
    watch, search = events("watch-history"), events("search-events")
else:
    raise ValueError(f"source must be 'simulate' or 'topic', not {source!r}")
span = f"{watch['timestamp'].min():%Y-%m-%d %H:%M} → {watch['timestamp'].max():%Y-%m-%d %H:%M} UTC" if watch.height else "no events"
print(f"{watch.height:,} viewings and {search.height:,} searches, {span}")


# %% [markdown]
# ## Average watch time per genre, per window size

# %%
def genre_windows(size):
    return (watch.sort("timestamp")
            .group_by_dynamic("timestamp", every=f"{size}m", group_by="genre")
            .agg(pl.col("seconds_watched").mean().alias("avg_watch_s"), pl.len().alias("viewings"))
            .rename({"timestamp": "window_start"})
            .with_columns(pl.lit(f"{size} min").alias("window")))

tumbling = pl.concat([genre_windows(size) for size in sizes])
lab.table(tumbling.group_by("window").agg(pl.col("window_start").n_unique().alias("windows"),
                                          pl.len().alias("windows x genres"), pl.col("viewings").sum())
          .sort(pl.col("window").str.extract(r"(\d+)").cast(pl.Int64)).rename({"window": "window size"}),
          caption="every viewing falls in exactly one window of each size")

# %%
top = (watch.group_by("genre").agg(pl.col("seconds_watched").mean().alias("avg_watch_s")).sort("avg_watch_s", descending=True))
lab.genre_bars(top, value="avg_watch_s", value_title="average watch time per viewing (s)",
               title="Average watch time per genre, whole range",
               caption="Longer bars: genres whose viewings last longer. The four longest are followed below.")

# %%
busiest = top["genre"].head(4).to_list()
lab.window_series(tumbling.filter(pl.col("genre").is_in(busiest)), value="avg_watch_s",
                  value_title="average watch (s)", color="genre", facet="window", facet_title="window size",
                  title="Average watch time per window: the four longest-watched genres",
                  caption="Smaller windows show more of the evening's swings, and more noise from few viewings.")

# %% [markdown]
# ## A hopping window

# %%
largest = max(sizes)
hopping = (watch.sort("timestamp")
           .group_by_dynamic("timestamp", every=f"{hop_minutes}m", period=f"{largest}m", group_by="genre")
           .agg(pl.col("seconds_watched").mean().alias("avg_watch_s"))
           .rename({"timestamp": "window_start"}))
lab.window_series(hopping.filter(pl.col("genre").is_in(busiest)), value="avg_watch_s",
                  value_title="average watch (s)", color="genre",
                  title=f"Average watch time in {largest}-minute windows every {hop_minutes} minutes",
                  caption=f"Each point averages the {largest} minutes from its start: smoother than tumbling windows.")

# %% [markdown]
# ## Search volume per 30 minutes

# %%
volume = (search.sort("timestamp").group_by_dynamic("timestamp", every="30m")
          .agg(pl.len().alias("searches"), pl.col("user_id").n_unique().alias("searchers"))
          .rename({"timestamp": "window_start"}))
lab.window_series(volume, value="searches", value_title="searches per window",
                  title="Search volume per 30 minutes",
                  caption="Searches in each 30-minute window of event time, all users together.")

# %% [markdown]
# ## The stream app's own windows
# With a topic source: the analytics app's 30-minute genre windows (its Parquet results) next to the batch ones above. They differ only where late records were left out of the app's window (below); `05-stream-vs-batch` reconciles every output exactly.

# %%
app = lab.load_results("genre_watch_time", "tumbling") if source == "topic" else pl.DataFrame()
if app.height:
    app = app.filter(pl.col("window_ms") == 30 * 60_000)
    batch30 = genre_windows(30).with_columns(window_start_ms=pl.col("window_start").dt.epoch("ms"))
    side = batch30.join(app.select("genre", "window_start_ms", pl.col("count").alias("app_viewings"),
                                   pl.col("mean_seconds").alias("app_avg_watch_s")),
                        on=["genre", "window_start_ms"], how="inner")
    equal = side.filter(pl.col("app_viewings") == pl.col("viewings")).height
    print(f"{side.height} windows the app closed in this range, {equal} with the batch count")
    display(lab.table(side.sort("window_start", "genre").select(
        "genre", "window_start", pl.col("viewings").alias("batch viewings"), pl.col("app_viewings").alias("app viewings"),
        pl.col("avg_watch_s").alias("batch avg watch (s)"), pl.col("app_avg_watch_s").alias("app avg watch (s)")),
        limit=12, caption="30-minute windows: the batch computation above and the analytics app"))
else:
    print("no stream results to show: a simulated source, or the analytics app has written none")


# %% [markdown]
# ## Late events
# An event is late when, in arrival order, its window (the largest size) had already closed: the latest event time seen before it passed the window's end plus the grace period. Simulated events arrive in event-time order (none are late); a topic is read in offset order per partition.

# %%
grace_ms = int(grace_minutes * 60_000)
window_ms = largest * 60_000
def late_events(frame):
    ms = frame.with_columns(pl.col("timestamp").dt.epoch("ms").alias("t"))
    by = "_partition" if "_partition" in ms.columns else None
    ms = ms.with_columns((pl.col("t").cum_max().shift(1).over(by) if by else pl.col("t").cum_max().shift(1)).alias("seen"))
    return ms.filter(pl.col("seen") >= (pl.col("t") // window_ms + 1) * window_ms + grace_ms)
late = late_events(watch)
print(f"{late.height} late viewings of {watch.height:,} ({largest}-minute windows, {grace_minutes:g} min grace)")

# %%
lab.key_numbers(viewings=watch.height, searches=search.height,
                watch_hours=round(float(watch["seconds_watched"].sum()) / 3600, 3),
                windows={w: int(tumbling.filter(pl.col("window") == w)["window_start"].n_unique()) for w in tumbling["window"].unique().sort()},
                top_genre=top["genre"][0], late_viewings=late.height)
