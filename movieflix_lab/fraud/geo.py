"""Where a country is, and how far apart two are: every ISO 3166-1 country.

The points come from ``data/countries.csv`` (built by ``scripts/build_countries.py`` from
GeoNames and countryinfo; sources and licences in ``data/LICENSE.md``): each country's
population-weighted centroid of its populated places, which is where its logins come from.
Distances are great-circle (haversine) kilometres between two points.

A code that is not an ISO 3166-1 alpha-2 country (``ZZ``, ``UK``, ``A1``), or a country without a
point (two uninhabited territories), has no distance: :class:`Geography` counts each such code
and logs it once, so a rule that cannot check a login says so instead of skipping it silently.
"""

from __future__ import annotations

import csv
import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

__all__ = ["Country", "Geography", "countries", "distance_km"]

logger = logging.getLogger(__name__)
EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class Country:
    alpha2: str
    alpha3: str
    name: str
    lat: float | None
    lon: float | None


@cache
def countries() -> dict[str, Country]:
    """Every ISO 3166-1 country by its alpha-2 code (from the packaged data file).

    >>> c = countries()
    >>> len(c) >= 249, c["NZ"].name, c["GB"].alpha3
    (True, 'New Zealand', 'GBR')
    """
    text = resources.files("movieflix_lab.fraud").joinpath("data/countries.csv").read_text("utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {
        row["alpha2"]: Country(
            row["alpha2"],
            row["alpha3"],
            row["name"],
            float(row["lat"]) if row["lat"] else None,
            float(row["lon"]) if row["lon"] else None,
        )
        for row in rows
    }


def _haversine(a: Country, b: Country) -> float:
    assert a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


@cache
def distance_km(a: str, b: str) -> float | None:
    """Kilometres between two countries' points; None when either has none.

    >>> round(distance_km("GB", "NZ"), -3), distance_km("GB", "GB"), distance_km("GB", "ZZ")
    (19000.0, 0.0, None)
    """
    table = countries()
    first, second = table.get(a), table.get(b)
    if first is None or second is None or first.lat is None or second.lat is None:
        return None
    return _haversine(first, second)


@dataclass
class Geography:
    """Distances for a running detector, counting the codes it cannot place.

    ``unknown`` counts codes that are no ISO 3166-1 country; ``unlocated`` countries without a
    point. Each code is logged once per process (a warning), however often it comes.
    """

    unknown: Counter[str] = field(default_factory=Counter)
    unlocated: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def km(self, a: str, b: str) -> float | None:
        """Kilometres between ``a`` and ``b``, or None (counted and logged once per code)."""
        found = distance_km(a, b)
        if found is not None:
            return found
        table = countries()
        for code in (a, b):
            if code not in table:
                self._note(self.unknown, code, "is not an ISO 3166-1 alpha-2 country code")
            elif table[code].lat is None:
                self._note(self.unlocated, code, f"({table[code].name}) has no location")
        return None

    def _note(self, counter: Counter[str], code: str, why: str) -> None:
        with self._lock:
            first = code not in counter
            counter[code] += 1
        if first:
            logger.warning(
                "impossible travel cannot check logins from country %r: it %s (counted, "
                "logged once)", code, why,
            )  # fmt: skip

    def counts(self) -> dict[str, dict[str, int]]:
        return {"unknown": dict(self.unknown), "unlocated": dict(self.unlocated)}
