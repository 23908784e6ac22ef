"""The recommender's pure logic: confidence, metrics, the split, the model, versions."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from movieflix_lab.lab import simulated_history
from movieflix_lab.recs import (
    ALSParams,
    Confidence,
    IdMap,
    RecsModel,
    aggregate,
    load_version,
    ranking_metrics,
    save_version,
    temporal_split,
)
from movieflix_lab.recs.data import INTERACTIONS
from movieflix_lab.recs.store import latest_version, list_versions


@pytest.fixture(scope="module")
def history() -> tuple[pl.DataFrame, pl.DataFrame]:
    return simulated_history(seed=5, users=300, days=10)


@pytest.fixture(scope="module")
def model(history: tuple[pl.DataFrame, pl.DataFrame]) -> RecsModel:
    interactions, movies = history
    return RecsModel(ALSParams(factors=16, alpha=8.0)).fit(interactions, movies)


def test_confidence_likes_dislikes_rewatches_ratings() -> None:
    c = Confidence(alpha=4.0)
    full, abandoned = c.values([1.0, 0.05])
    assert full == pytest.approx(1 + 4 * 1.0) and abandoned == pytest.approx(-(1 + 4 * 0.20))
    once, thrice = c.values([0.8, 0.8], [1, 3])
    assert thrice == pytest.approx(1 + 4 * (0.8 + 0.5 * 2)) and thrice > once
    assert c.values(0.8, 50) == c.values(0.8, 4)  # rewatches are capped
    assert c.values(1.0, 1, 1) < 0 < c.values(0.3, 1, 5)  # ratings move it both ways


def test_aggregate_one_row_per_pair() -> None:
    rows = [
        ("u1", "m1", 1000, 0.4, None, "drama"),
        ("u1", "m1", 5000, 0.9, None, "drama"),
        ("u1", "m1", 6000, None, 5.0, None),
        ("u2", "m1", 2000, 0.1, None, "drama"),
    ]
    pairs = aggregate(pl.DataFrame(rows, schema=INTERACTIONS, orient="row"))
    first = pairs.row(0, named=True)
    assert (first["views"], first["completion"], first["rating"]) == (2, 0.9, 5.0)
    assert (first["first_ms"], first["last_ms"]) == (1000, 6000)
    assert first["value"] == pytest.approx(Confidence().values(0.9, 2, 5.0))
    assert pairs.row(1, named=True)["value"] < 0


def test_ranking_metrics_by_hand() -> None:
    recommended = {"a": ["x", "y", "z"], "b": ["p", "q", "r"]}
    relevant = {"a": {"y", "w"}, "b": {"p"}}
    m = ranking_metrics(recommended, relevant, k=3, catalog_size=10)
    ndcg_a = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert m["ndcg@3"] == pytest.approx((ndcg_a + 1.0) / 2)
    assert m["precision@3"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert m["recall@3"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["map@3"] == pytest.approx(((1 / 2) / 2 + 1.0) / 2)
    assert m["coverage"] == pytest.approx(6 / 10)


def test_temporal_split_holds_out_each_users_latest(
    history: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    interactions, _ = history
    split = temporal_split(interactions)
    first = interactions.group_by("user_id", "movie_id").agg(pl.col("ts_ms").min())
    train = first.join(
        split.train.select("user_id", "movie_id").unique(), on=["user_id", "movie_id"]
    )
    test = first.join(split.test.select("user_id", "movie_id").unique(), on=["user_id", "movie_id"])
    latest_train = dict(train.group_by("user_id").agg(pl.col("ts_ms").max()).iter_rows())
    earliest_test = dict(test.group_by("user_id").agg(pl.col("ts_ms").min()).iter_rows())
    assert earliest_test and all(earliest_test[u] >= latest_train[u] for u in earliest_test)
    for user, movies in list(split.relevant.items())[:50]:
        assert movies <= set(test.filter(pl.col("user_id") == user)["movie_id"])


def test_recommendations_filter_watched_and_respect_genre(model: RecsModel, history: tuple) -> None:
    interactions, movies = history
    user = interactions["user_id"][0]
    watched = set(interactions.filter(pl.col("user_id") == user)["movie_id"])
    recs = model.recommend(user, 20)
    assert len(recs) == 20 and not {r.movie_id for r in recs} & watched
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    # Scores are the dot product of the user's and the movie's vectors.
    u = model.als.user_factors[model.users.get(user)]
    i = model.movies.get(recs[0].movie_id)
    assert recs[0].score == pytest.approx(float(model.als.item_factors[i] @ u), rel=1e-5)
    horror = model.recommend(user, 5, genre="horror")
    assert horror and all(r.genre == "horror" for r in horror)
    titles = dict(zip(movies["movie_id"], movies["title"], strict=True))
    assert all(r.title == titles[r.movie_id] for r in recs)


def test_cold_start_is_recent_popularity_genre_aware(model: RecsModel) -> None:
    assert model.is_cold("nobody")
    popular = model.recommend("nobody", 10)
    order = np.argsort(-model.popularity, kind="stable")[:10]
    assert [r.movie_id for r in popular] == [model.movies.ids[i] for i in order]
    comedy = model.recommend("nobody", 5, genre="comedy")
    assert all(r.genre == "comedy" for r in comedy)


def test_similar_is_cosine_of_movie_vectors(model: RecsModel) -> None:
    movie = model.movies.ids[int(np.argmax(model.popularity))]
    similar = model.similar(movie, 5)
    factors = model.als.item_factors
    i = model.movies.get(movie)
    cos = (
        factors
        @ factors[i]
        / (np.linalg.norm(factors, axis=1) * np.linalg.norm(factors[i]) + 1e-12)
    )
    cos[i] = -np.inf
    assert [r.movie_id for r in similar] == [model.movies.ids[j] for j in np.argsort(-cos)[:5]]
    with pytest.raises(KeyError):
        model.similar("no-such-movie")


def test_update_users_changes_only_that_user(history: tuple) -> None:
    interactions, movies = history
    model = RecsModel(ALSParams(factors=16, alpha=8.0)).fit(interactions, movies)
    users = interactions["user_id"].unique(maintain_order=True).to_list()[:20]
    before = {u: [r.movie_id for r in model.recommend(u, 10)] for u in users}
    target = users[0]
    horror = [m for m, g in zip(movies["movie_id"], movies["genre"], strict=True) if g == "horror"][
        :15
    ]
    history_row = {m: float(Confidence(alpha=8.0).values(1.0)) for m in horror}
    model.update_users({target: history_row})
    after = model.recommend(target, 10)
    assert [r.movie_id for r in after] != before[target]
    assert sum(r.genre == "horror" for r in after) >= 7
    assert not {r.movie_id for r in after} & set(horror)  # the new row is the watched set
    for user in users[1:]:
        assert [r.movie_id for r in model.recommend(user, 10)] == before[user]
    # A new user grows the mapping and the factors.
    model.update_users({"brand-new": history_row})
    assert "brand-new" in model.users and not model.is_cold("brand-new")
    # A movie first seen online joins the catalog and the watched filter.
    model.add_movie("m-new", genre="horror")
    model.update_users({"brand-new": {**history_row, "m-new": 5.0}})
    assert "m-new" not in {r.movie_id for r in model.recommend("brand-new", 50)}
    assert model.catalog.genres[model.movies.get("m-new")] == "horror"


def test_save_load_round_trip_gives_identical_recommendations(
    model: RecsModel, tmp_path: Path, history: tuple
) -> None:
    interactions, _ = history
    model.save(tmp_path / "m")
    loaded = RecsModel.load(tmp_path / "m")
    for user in [*interactions["user_id"].unique().to_list()[:30], "nobody"]:
        assert loaded.recommend(user, 10) == model.recommend(user, 10)
    movie = model.movies.ids[3]
    assert loaded.similar(movie, 10) == model.similar(movie, 10)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format 99"):
        RecsModel.load(tmp_path / "m")


def test_versions_and_latest_link(model: RecsModel, tmp_path: Path) -> None:
    root = tmp_path / "recs"
    with pytest.raises(FileNotFoundError, match="train recs"):
        load_version(root)
    first = save_version(model, root, {"source": {"kind": "test"}})
    second = save_version(model, root, {"source": {"kind": "test"}})
    assert first != second and list_versions(root) == sorted([first, second])
    assert latest_version(root) == second and os.readlink(root / "latest") == second
    loaded, provenance = load_version(root)
    assert provenance["version"] == second and provenance["source"] == {"kind": "test"}
    assert provenance["hyperparameters"]["factors"] == 16
    assert provenance["data_range"]["first_event"] < provenance["data_range"]["last_event"]
    assert provenance["git_sha"] and provenance["packages"]["implicit"].startswith("0.7")
    assert loaded.recommend("nobody", 3) == model.recommend("nobody", 3)


def test_idmap_grows_and_keeps_indices() -> None:
    ids = IdMap(["a", "b"])
    assert ids.add("c") == 2 and ids.add("a") == 0 and ids.get("zzz") is None and len(ids) == 3
