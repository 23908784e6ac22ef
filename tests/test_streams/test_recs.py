"""Recommendations on a real broker: train from watch-history, the recs app keeping users
fresh, the serve app's endpoints, a new version picked up without a restart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from movieflix_lab.config import Settings
from movieflix_lab.events import WatchRecord
from movieflix_lab.jobs.processes import stream_process
from movieflix_lab.jobs.recs import train_recs
from movieflix_lab.kafka.catalog import create_topics
from movieflix_lab.kafka.client import consumer, watermarks
from movieflix_lab.kafka.event_writer import EventWriter
from movieflix_lab.recs.data import interactions_from_records
from movieflix_lab.recs.store import latest_version, load_version
from movieflix_lab.serve.app import create_app
from movieflix_lab.simulate import SimulationConfig, Simulator
from movieflix_lab.streams.runner import outstanding
from tests.fixtures.kafka import with_settings

START = datetime(2026, 3, 1, 18, tzinfo=UTC)


def _watch(user: str, movie: str, genre: str, at: datetime, completion: float = 1.0) -> WatchRecord:
    return WatchRecord(
        event_id=uuid.uuid4(), user_id=user, timestamp=at, movie_id=movie, genre=genre,
        session_id="s-test", device_id="tv-test", started_at=at - timedelta(minutes=90),
        seconds_watched=5400 * completion, movie_duration_s=5400,
        completion_ratio=completion,
    )  # fmt: skip


def _send(settings: Settings, records: list[WatchRecord]) -> None:
    with EventWriter(settings) as writer:
        for record in records:
            writer.send(record)


def _wait(condition: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def recs_world(
    clean_kafka: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    models: Path = tmp_path_factory.mktemp("models")
    settings = with_settings(clean_kafka, models_dir=models, recs_refit_interval_s=0,
                             recs_reload_interval_s=0.5)  # fmt: skip
    create_topics(settings)
    simulator = Simulator(SimulationConfig(seed=12, users=300, minutes=7 * 1440,
                                           incident_rates={}, start=START))  # fmt: skip
    watches = [e for e in simulator.events() if e.event_type == "watch"]  # type: ignore[attr-defined]
    _send(settings, watches)  # type: ignore[arg-type]
    catalog = pl.DataFrame([(m.movie_id, m.title, m.genre) for m in simulator.world.movies],
                           schema=["movie_id", "title", "genre"], orient="row")  # fmt: skip
    movies_file = models / "movies.parquet"
    catalog.write_parquet(movies_file)
    trained = train_recs(settings, movies_path=movies_file, tune=False)
    with stream_process(settings, "recs"):
        _wait(lambda: outstanding(settings, "recs", "at-least-once") == 0, 120, "the recs app")
        with TestClient(create_app(settings)) as client:
            service = client.app.state.recs  # type: ignore[attr-defined]
            assert service.caught_up(60)
            yield {"settings": settings, "client": client, "service": service,
                   "watches": watches, "trained": trained, "catalog": catalog,
                   "movies_file": movies_file}  # fmt: skip


def test_training_reads_the_whole_topic_with_provenance(recs_world: dict[str, Any]) -> None:
    settings, trained, watches = (
        recs_world["settings"],
        recs_world["trained"],
        recs_world["watches"],
    )
    pairs = {(w.user_id, w.movie_id) for w in watches}
    # Compaction may already have dropped earlier viewings of a movie a user rewatched.
    assert trained.source["kind"] == "topic"
    assert len(pairs) <= trained.source["records"] <= len(watches)
    reader = consumer(settings)
    try:
        ends = {str(p): list(watermarks(reader, "watch-history", p)) for p in range(6)}
    finally:
        reader.close()
    assert trained.source["offsets"] == ends
    model, provenance = load_version(settings.recs_model_path, trained.version)
    batch = interactions_from_records(w.model_dump(mode="python") for w in watches)
    assert model.interactions == trained.source["records"]
    assert model.user_items.nnz == len(pairs)
    assert sorted(model.users.ids) == sorted(batch["user_id"].unique())
    assert provenance["data_range"]["first_event"].startswith("2026-03-0")


def test_one_users_viewings_change_their_recommendations_only(recs_world: dict[str, Any]) -> None:
    client, service, catalog = recs_world["client"], recs_world["service"], recs_world["catalog"]
    users = sorted({w.user_id for w in recs_world["watches"]})[:12]
    before = {u: client.get(f"/v1/recommendations/{u}").json() for u in users}
    target = users[0]
    assert before[target]["strategy"] == "als" and len(before[target]["items"]) == 10
    horror = catalog.filter(pl.col("genre") == "horror")["movie_id"].to_list()[:12]
    at = START + timedelta(days=8)
    _send(recs_world["settings"], [_watch(target, m, "horror", at + timedelta(minutes=i))
                                   for i, m in enumerate(horror)])  # fmt: skip

    last = int((at + timedelta(minutes=len(horror) - 1)).timestamp() * 1000)

    def applied() -> bool:  # the update carrying the last of the viewings reached the server
        return service.last_applied.get(target, (0, 0.0))[0] >= last

    _wait(applied, 15, f"{target}'s last viewing to reach the recommendations")
    after = client.get(f"/v1/recommendations/{target}?n=50").json()
    assert sum(item["genre"] == "horror" for item in after["items"][:10]) >= 5, after
    assert not {item["movie_id"] for item in after["items"]} & set(horror)  # watched: filtered
    for user in users[1:]:
        assert client.get(f"/v1/recommendations/{user}").json() == before[user]


def test_a_finished_viewing_shows_within_two_seconds(recs_world: dict[str, Any]) -> None:
    client = recs_world["client"]
    users = sorted({w.user_id for w in recs_world["watches"]})[20:40]
    latencies = []
    for i, user in enumerate(users):
        top = client.get(f"/v1/recommendations/{user}?n=10").json()["items"][0]
        sent = time.monotonic()
        _send(recs_world["settings"], [_watch(user, top["movie_id"], top["genre"],
                                              START + timedelta(days=9, minutes=i))])  # fmt: skip

        def gone(user: str = user, movie: str = top["movie_id"]) -> bool:
            items = client.get(f"/v1/recommendations/{user}?n=10").json()["items"]
            return movie not in {item["movie_id"] for item in items}

        _wait(gone, 10, f"{user}'s viewing to reach the endpoint")
        latencies.append(time.monotonic() - sent)
    assert max(latencies) < 2.0, latencies


def test_cold_start_popularity_then_als_after_a_first_viewing(recs_world: dict[str, Any]) -> None:
    client, catalog = recs_world["client"], recs_world["catalog"]
    body = client.get("/v1/recommendations/newcomer-1?n=5").json()
    assert body["strategy"] == "popularity" and len(body["items"]) == 5
    model = recs_world["service"].model
    assert [i["movie_id"] for i in body["items"]] == [r.movie_id for r in model.popular(5)]
    comedy = client.get("/v1/recommendations/newcomer-1?n=5&genre=comedy").json()["items"]
    assert len(comedy) == 5 and all(item["genre"] == "comedy" for item in comedy)
    drama = catalog.filter(pl.col("genre") == "drama")["movie_id"].to_list()[:3]
    _send(recs_world["settings"], [_watch("newcomer-1", m, "drama", START + timedelta(days=9))
                                   for m in drama])  # fmt: skip
    _wait(lambda: client.get("/v1/recommendations/newcomer-1").json()["strategy"] == "als", 10,
          "the new user's first vector")  # fmt: skip
    # A movie nobody had seen: in the catalog and the watched filter at once.
    _send(recs_world["settings"], [_watch("newcomer-1", "m-premiere", "documentary",
                                          START + timedelta(days=9, hours=1))])  # fmt: skip
    _wait(lambda: "m-premiere" in recs_world["service"].model.movies, 10, "the new movie")


def test_bad_parameters_are_refused_naming_the_field(recs_world: dict[str, Any]) -> None:
    client = recs_world["client"]
    for query, field in (("n=0", "n"), ("n=101", "n"), ("n=ten", "n"), ("genre=opera", "genre")):
        response = client.get(f"/v1/recommendations/u000001?{query}")
        assert response.status_code == 422, query
        assert [d["field"] for d in response.json()["detail"]] == [field]
    assert client.get("/v1/recommendations/bad:id").status_code == 422
    assert client.get("/v1/movies/no-such-movie/similar").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    declared = [p["name"] for p in paths["/v1/recommendations/{user_id}"]["get"]["parameters"]]
    assert declared == ["user_id", "n", "genre"]
    assert "/v1/movies/{movie_id}/similar" in paths
    similar = client.get("/v1/movies/m00001/similar?n=4").json()
    assert len(similar["items"]) == 4 and "m00001" not in {i["movie_id"] for i in similar["items"]}


def test_a_new_model_version_is_picked_up_without_a_restart(recs_world: dict[str, Any]) -> None:
    settings, client, service = recs_world["settings"], recs_world["client"], recs_world["service"]
    old = service.version
    target = sorted({w.user_id for w in recs_world["watches"]})[0]
    watched_online = set(service.histories[target])
    trained = train_recs(settings, movies_path=recs_world["movies_file"], tune=False)
    assert latest_version(settings.recs_model_path) == trained.version != old
    _wait(lambda: client.get(f"/v1/recommendations/{target}").json()["model_version"]
          == trained.version, 10, "the new version")  # fmt: skip
    # The refit read the viewings sent since (they are on the topic); still filtered.
    items = client.get(f"/v1/recommendations/{target}?n=100").json()["items"]
    assert not {i["movie_id"] for i in items} & watched_online
    # The topic may have been compacted since (rewatches collapse to the latest viewing):
    # the set of (user, movie) pairs only grows.
    root = settings.recs_model_path
    before, after = load_version(root, old)[0], load_version(root, trained.version)[0]
    assert after.user_items.nnz > before.user_items.nnz


def test_import_movielens_replays_viewings_into_watch_history(
    recs_world: dict[str, Any], tmp_path: Path
) -> None:
    from movieflix_lab.kafka.reader import read_topic
    from tests.fixtures.cli import cli_env, run_cli
    from tests.fixtures.movielens import WRITERS, ratings

    settings = recs_world["settings"]
    source = WRITERS["ml-1m"](tmp_path / "ml-1m")
    done = run_cli("import", "movielens", str(source), "--replay", "--out", str(tmp_path / "out"),
                   env=cli_env(settings))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "400 viewings replayed into watch-history" in done.stdout
    replayed: list[dict[str, Any]] = []

    def keep(batch: list[dict[str, Any]]) -> None:
        replayed.extend(r for r in batch if r["user_id"].startswith("ml-u"))

    read_topic(settings, "watch-history", keep)
    assert len(replayed) == len(ratings()) == 400
    # In time order: each user's viewings (one partition per user) arrive oldest first.
    per_user: dict[str, list[str]] = {}
    for record in replayed:
        per_user.setdefault(record["user_id"], []).append(record["timestamp"])
    assert all(times == sorted(times) for times in per_user.values())
    five_stars = [r for r in replayed if r["completion_ratio"] == 1.0]
    assert len(five_stars) == 7 * 40  # each fixture user rated 7 movies 5 stars
