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
# # 03 · Recommendations: evaluation
# ALS against the strongest simple baselines (plain popularity, recent popularity, item-based kNN), each tuned on the same validation split, on each user's held-out latest movies; per genre; and example users with their history and recommendations.

# %% tags=["parameters"]
# "simulate": a seeded simulated history (planted tastes); "data": a MovieLens folder or `import movielens` output at data_path
source: str = "simulate"
data_path: str = ""
seed: int = 42
users: int = 600
days: float = 10.0
sim_start: str = "2026-11-01T18:00:00+00:00"
tune: bool = True
# which held-out movies count as hits: "liked" ones or "all" of them
relevant: str = "liked"
examples: int = 3

# %%
from datetime import datetime
from pathlib import Path

import polars as pl

from movieflix_lab import lab
from movieflix_lab.jobs.recs import load_data
from movieflix_lab.lab import simulated_history
from movieflix_lab.recs import ALSParams, RecsModel, temporal_split
from movieflix_lab.recs.baselines import fit_baseline, train_matrix
from movieflix_lab.recs.evaluate import evaluate_recs, per_genre

lab.offline()
if source == "simulate":
    interactions, movies = simulated_history(seed=seed, users=users, days=days, start=datetime.fromisoformat(sim_start))
    lab.session.record("simulation", seed=seed, users=users, days=days, start=sim_start)
elif source == "data":
    interactions, movies, described = load_data(Path(data_path))
    lab.session.record("data", **described)
else:
    raise ValueError(f"source must be 'simulate' or 'data', not {source!r}")
report = evaluate_recs(interactions, movies, tune_params=tune, relevant=relevant)
labels = {"popularity": "popularity", "recent_popularity": "recent popularity", "item_knn": "item-kNN"}
best = report["best_baseline"]
print(f"{report['interactions']:,} interactions, {report['users']:,} users, {report['movies']:,} movies; "
      f"{report['users_evaluated']:,} users scored on their latest {report['holdout']:.0%} of movies ({relevant} ones count)")
print(f"NDCG@10: ALS {report['ndcg@10']:.4f}, best baseline {labels[best]} {report['best_baseline_ndcg@10']:.4f}: {report['ndcg_ratio']}x")

# %% [markdown]
# ## ALS against the baselines

# %%
metrics = ["precision@10", "recall@10", "ndcg@10", "map@10", "coverage"]
scores = {"ALS": report, **{labels[n]: row for n, row in report["baselines"].items()}}
comparison = pl.DataFrame([{"metric": m, "model": model, "value": row[m]} for m in metrics for model, row in scores.items()])
lab.metric_comparison(comparison, title=f"Held-out latest movies: NDCG@10 of ALS is {report['ndcg_ratio']}x the best baseline's ({labels[best]})",
                      caption="Each metric for ALS and each tuned baseline; coverage is the share of the catalog ever recommended.")

# %%
lab.table([{"model": model, **{m: row[m] for m in metrics},
            "chosen on validation": ", ".join(f"{k}={v}" for k, v in (row.get("params") or {}).items() if k not in ("seed", "iterations"))}
           for model, row in scores.items()], caption="every metric at 10 recommendations per user, 0 to 1")

# %%
if report["tuning"]:
    display(lab.table(sorted(report["tuning"], key=lambda r: -r["validation_ndcg@10"]),
                      caption="ALS's grid on the validation split, best first (the test split is never looked at)"))
else:
    print("ALS not tuned: the default hyper-parameters")

# %% [markdown]
# ## Per genre (of the held-out movies)

# %%
split = temporal_split(interactions, holdout=report["holdout"], relevant=relevant)
model = RecsModel(ALSParams(**report["params"])).fit(split.train, movies)
strongest = fit_baseline(best, train_matrix(split.train, movies), report["baselines"][best]["params"])
genres = per_genre(model, split, baseline=strongest).filter(pl.col("baseline_ndcg") > 0)
lab.genre_bars(genres.select("genre", (pl.col("als_ndcg") / pl.col("baseline_ndcg")).alias("ndcg_ratio")), value="ndcg_ratio",
               value_title=f"NDCG@10 of ALS / {labels[best]}'s (1 = as good)",
               title=f"ALS against {labels[best]}, per genre of the held-out movies",
               caption="Bars past 1: genres where ALS ranks the user's next movies better than the best baseline.")

# %% [markdown]
# ## Example users

# %%
titles = dict(zip(model.movies.ids, model.catalog.titles, strict=True))
genre_of = dict(zip(model.movies.ids, model.catalog.genres, strict=True))
def named(movies):
    return "; ".join(f"{titles.get(m, m)} ({genre_of.get(m)})" for m in movies)
rows = []
for user in sorted(split.relevant)[:examples]:
    history = split.train.filter(pl.col("user_id") == user).sort("ts_ms")["movie_id"].to_list()[-5:]
    held = split.relevant[user]
    recommended = model.recommend(user, 5)
    rows.append({"user": user, "last watched": named(history),
                 "recommended (✓ held out)": "; ".join(f"{'✓ ' if r.movie_id in held else ''}{r.title} ({r.genre})" for r in recommended),
                 "held out": named(sorted(held)[:5])})
lab.table(rows, caption="a few users: the end of their training history, ALS's top 5, and what they went on to watch")

# %%
lab.key_numbers(**{k: report[k] for k in ("ndcg@10", "popularity_ndcg@10", "best_baseline", "best_baseline_ndcg@10", "precision@10",
                                         "recall@10", "map@10", "coverage", "ndcg_ratio", "relevant")},
                params=report["params"], baselines={n: row["ndcg@10"] for n, row in report["baselines"].items()})
