"""The simulated world: a movie catalog and a user population with planted tastes.

Everything is drawn from one seed, so the same seed gives the same world. Users' genre
tastes are the known truth that recommendation quality is measured against.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COUNTRIES", "GENRES", "Movie", "User", "World", "build_world"]

GENRES: tuple[str, ...] = (
    "action", "adventure", "animation", "comedy", "crime", "documentary", "drama",
    "family", "fantasy", "horror", "romance", "sci-fi", "thriller",
)  # fmt: skip

#: Where users live, with weights; the first octet of their IPs follows the country.
COUNTRIES: tuple[tuple[str, float, int], ...] = (
    ("US", 0.30, 23), ("GB", 0.10, 51), ("DE", 0.10, 84), ("FR", 0.08, 90), ("ES", 0.06, 88),
    ("IT", 0.06, 93), ("NL", 0.05, 77), ("SE", 0.04, 78), ("PL", 0.04, 83), ("BR", 0.07, 177),
    ("CA", 0.05, 99), ("IN", 0.05, 49),
)  # fmt: skip

_ADJECTIVES = (
    "Silent", "Crimson", "Last", "Hidden", "Golden", "Broken", "Midnight", "Electric", "Lost",
    "Frozen", "Wild", "Distant", "Iron", "Secret", "Burning", "Quiet", "Endless", "Velvet",
)  # fmt: skip
_NOUNS = (
    "Harbor", "Signal", "Kingdom", "Orchard", "Protocol", "River", "Empire", "Garden", "Echo",
    "Frontier", "Horizon", "Station", "Voyage", "Letter", "Circuit", "Summer", "Cipher", "Crown",
)  # fmt: skip
DEVICE_KINDS = ("tv", "phone", "tablet", "web")


@dataclass(frozen=True)
class Movie:
    movie_id: str
    title: str
    genre: str
    duration_s: float
    #: An episode of a series (short), else a film.
    episode: bool
    #: Long-tailed (Zipf) popularity weight within the whole catalog.
    popularity: float


@dataclass(frozen=True)
class User:
    user_id: str
    #: Probability of picking each genre (same order as :data:`GENRES`): the planted truth.
    taste: tuple[float, ...]
    country: str
    home_ip: str
    devices: tuple[str, ...]
    #: Mean viewing sessions per day.
    sessions_per_day: float

    def favourite_genres(self, k: int = 3) -> list[str]:
        ranked = sorted(range(len(GENRES)), key=lambda g: (-self.taste[g], g))
        return [GENRES[g] for g in ranked[:k]]


@dataclass
class World:
    movies: list[Movie]
    users: list[User]
    #: Per genre: the movies and their cumulative popularity (for weighted picks).
    by_genre: dict[str, tuple[list[Movie], list[float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for genre in GENRES:
            movies = [m for m in self.movies if m.genre == genre]
            cumulative, total = [], 0.0
            for movie in movies:
                total += movie.popularity
                cumulative.append(total)
            self.by_genre[genre] = (movies, cumulative)

    def pick_movie(self, rng: random.Random, genre: str) -> Movie:
        """A movie of ``genre`` by popularity; of any genre in a catalog too small to have
        one of ``genre`` (a few movies, many genres)."""
        movies, cumulative = self.by_genre[genre]
        if not movies:
            movies = self.movies
            cumulative = list(itertools.accumulate(m.popularity for m in movies))
        return rng.choices(movies, cum_weights=cumulative, k=1)[0]

    def movie_rows(self) -> list[dict[str, Any]]:
        return [m.__dict__.copy() for m in self.movies]

    def user_rows(self) -> list[dict[str, Any]]:
        rows = []
        for user in self.users:
            row: dict[str, Any] = {
                "user_id": user.user_id,
                "country": user.country,
                "home_ip": user.home_ip,
                "devices": list(user.devices),
                "sessions_per_day": user.sessions_per_day,
                "favourite_genres": user.favourite_genres(),
            }
            row.update({f"taste_{g}": p for g, p in zip(GENRES, user.taste, strict=True)})
            rows.append(row)
        return rows


def _ip(rng: random.Random, first_octet: int) -> str:
    return f"{first_octet}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _taste(rng: random.Random, concentration: float) -> tuple[float, ...]:
    """A Dirichlet draw: small ``concentration`` gives users a few strong favourite genres."""
    draws = [rng.gammavariate(concentration, 1.0) for _ in GENRES]
    total = sum(draws) or 1.0
    return tuple(d / total for d in draws)


def build_world(
    seed: int, *, users: int = 1000, movies: int = 2000, taste_concentration: float = 0.15
) -> World:
    """The catalog and the population for ``seed``."""
    rng = random.Random(f"world-{seed}")
    catalog = []
    for i in range(movies):
        genre = GENRES[rng.randrange(len(GENRES))]
        episode = rng.random() < 0.3
        duration = rng.uniform(20, 55) * 60 if episode else rng.uniform(80, 170) * 60
        title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
        if episode:
            title += f" S{rng.randint(1, 6)}E{rng.randint(1, 12)}"
        # Zipf over a random rank: a few hits, a long tail.
        catalog.append(Movie(f"m{i:05d}", title, genre, round(duration, 1), episode, 0.0))
    ranks = list(range(1, movies + 1))
    rng.shuffle(ranks)
    catalog = [
        Movie(m.movie_id, m.title, m.genre, m.duration_s, m.episode, 1.0 / rank**0.9)
        for m, rank in zip(catalog, ranks, strict=True)
    ]

    population = []
    country_weights = [w for _, w, _ in COUNTRIES]
    for i in range(users):
        country, _, octet = rng.choices(COUNTRIES, weights=country_weights, k=1)[0]
        user_id = f"u{i:06d}"
        devices = tuple(
            f"{kind}-{user_id}" for kind in rng.sample(DEVICE_KINDS, k=rng.randint(1, 3))
        )
        population.append(
            User(
                user_id=user_id,
                taste=_taste(rng, taste_concentration),
                country=country,
                home_ip=_ip(rng, octet),
                devices=devices,
                sessions_per_day=rng.lognormvariate(0.8, 0.5),
            )
        )
    return World(catalog, population)
