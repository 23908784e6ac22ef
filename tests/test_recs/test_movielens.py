"""The public MovieLens layouts, read from tiny fixtures written here."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from movieflix_lab.events.codec import decode, encode
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.jobs.recs import load_data, run_recs_eval
from movieflix_lab.recs.movielens import detect_layout, read_movielens, watch_records
from tests.fixtures.movielens import WRITERS, genre_of, ratings


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_each_layout_reads_the_same_ratings(layout: str, tmp_path: Path) -> None:
    folder = WRITERS[layout](tmp_path / layout)
    assert detect_layout(folder) == layout
    data = read_movielens(folder)
    expected = ratings()
    assert data.interactions.height == len(expected)
    assert data.movies.height == 40
    # Genres: the first listed, lower-cased, joined onto every viewing.
    genres = dict(zip(data.movies["movie_id"], data.movies["genre"], strict=True))
    assert genres["ml-m1"] == genre_of(1).lower() and genres["ml-m2"] == "comedy"
    assert set(data.interactions["genre"]) == {"action", "comedy", "drama", "horror"}
    # 5 stars is a full viewing, 1 star abandoned at the start.
    by_pair = {
        (u, m): c
        for u, m, c in data.interactions.select("user_id", "movie_id", "completion").iter_rows()
    }
    for user, movie, stars, _ in expected:
        completion = by_pair[(f"ml-u{user}", f"ml-m{movie}")]
        assert completion == pytest.approx(max(0.0, min(1.0, (stars - 1.5) / 3.5)))
    assert data.interactions["ts_ms"].is_sorted()


def test_watch_records_are_valid_events_in_time_order(tmp_path: Path) -> None:
    data = read_movielens(WRITERS["ml-1m"](tmp_path / "ml-1m"))
    records = list(watch_records(data.interactions))
    assert len(records) == data.interactions.height
    times = [r.timestamp for r in records]
    assert times == sorted(times)
    again = decode(encode(records[0]))  # the gateway's codec accepts them as they are
    assert again == records[0]
    assert records[0].event_id == next(iter(watch_records(data.interactions))).event_id


def test_unknown_folder_names_the_expected_files(tmp_path: Path) -> None:
    (tmp_path / "ratings.txt").write_text("1,2,3\n")
    with pytest.raises(MovieflixError, match=r"u.data \+ u.item.*ratings.dat.*ratings.csv"):
        load_data(tmp_path)


def test_malformed_line_is_named(tmp_path: Path) -> None:
    folder = WRITERS["ml-1m"](tmp_path / "bad")
    with (folder / "ratings.dat").open("a") as f:
        f.write("7::8\n")
    with pytest.raises(ValueError, match=r"ratings.dat: line 401 has 2 fields, expected 4"):
        read_movielens(folder)


def test_eval_on_movielens_fixture_beats_popularity(tmp_path: Path) -> None:
    """The planted genre tastes are learnable: ALS finds the held-out liked movies."""
    folder = WRITERS["ml-latest"](tmp_path / "ml-latest")
    evaluation = run_recs_eval(data=folder, tune=False)
    assert evaluation.data["kind"] == "movielens" and evaluation.data["layout"] == "ml-latest"
    report = evaluation.metrics
    # On MovieLens the goal is ALS over the best tuned baseline, at 1.3x.
    [goal] = evaluation.goals
    assert "best baseline" in goal.name and goal.target == ">= 1.3x"
    assert goal.value == report["ndcg_ratio"] and goal.met is (report["ndcg_ratio"] >= 1.3)
    # Evaluated: the users whose latest 2 of 10 movies (20 %) hold a liked one.
    latest: dict[int, list[float]] = {}
    for user, _, stars, _ in sorted(ratings(), key=lambda r: r[3]):
        latest.setdefault(user, []).append(stars)
    assert report["users_evaluated"] == sum(5.0 in s[-2:] for s in latest.values()) >= 30
    assert report["ndcg@10"] > report["popularity_ndcg@10"]
    assert report["ndcg@10"] > 0.3
    frame = pl.read_csv(folder / "ratings.csv")
    assert report["interactions"] == frame.height


def test_relevant_all_counts_every_held_out_movie(tmp_path: Path) -> None:
    """``--relevant all``: the 1-2 star movies held out count as hits too."""
    folder = WRITERS["ml-latest"](tmp_path / "ml-latest")
    liked = run_recs_eval(data=folder, tune=False).metrics
    every = run_recs_eval(data=folder, tune=False, relevant="all").metrics
    assert (liked["relevant"], every["relevant"]) == ("liked", "all")
    # Every user holds out 2 of 10 movies; with all of them counted, every user is scored.
    assert every["users_evaluated"] == 40 > liked["users_evaluated"]
