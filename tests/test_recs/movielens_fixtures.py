"""Tiny MovieLens folders in each public layout, written by the tests (no dataset committed).

Users 1-40 each like one genre of four (``user % 4``): they rate 5 stars movies of that
genre and 1-2 stars a few others, over time.
"""

from __future__ import annotations

import random
from pathlib import Path

GENRES_100K = ("Action", "Comedy", "Drama", "Horror")
FLAG_INDEX = {"Action": 1, "Comedy": 5, "Drama": 8, "Horror": 11}  # positions in u.item flags


def ratings(seed: int = 3) -> list[tuple[int, int, float, int]]:
    rng = random.Random(seed)
    rows = []
    for user in range(1, 41):
        liked = user % 4
        t = 880_000_000 + user * 1000
        own = [m for m in range(1, 41) if (m - 1) % 4 == liked]
        others = [m for m in range(1, 41) if (m - 1) % 4 != liked]
        picks = [(m, 5.0) for m in rng.sample(own, 7)]
        picks += [(m, float(rng.choice((1, 2)))) for m in rng.sample(others, 3)]
        rng.shuffle(picks)
        for movie, stars in picks:
            t += rng.randint(100, 5000)
            rows.append((user, movie, stars, t))
    return rows


def genre_of(movie: int) -> str:
    return GENRES_100K[(movie - 1) % 4]


def write_100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(
        "".join(f"{u}\t{m}\t{int(r)}\t{t}\n" for u, m, r, t in ratings())
    )
    lines = []
    for movie in range(1, 41):
        flags = ["0"] * 19
        flags[FLAG_INDEX[genre_of(movie)]] = "1"
        lines.append(f"{movie}|Movie {movie} (1995)|01-Jan-1995||http://x|" + "|".join(flags))
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return folder


def write_1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text(
        "".join(f"{u}::{m}::{int(r)}::{t}\n" for u, m, r, t in ratings())
    )
    (folder / "movies.dat").write_bytes(
        "".join(f"{m}::Movie {m} (1995)::{genre_of(m)}|Romance\n" for m in range(1, 41)).encode(
            "latin-1"
        )
    )
    return folder


def write_latest(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        + "".join(f"{u},{m},{r},{t}\n" for u, m, r, t in ratings())
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        + "".join(f'{m},"Movie {m}, The (1995)",{genre_of(m)}|Thriller\n' for m in range(1, 41))
    )
    return folder


WRITERS = {"ml-100k": write_100k, "ml-1m": write_1m, "ml-latest": write_latest}
