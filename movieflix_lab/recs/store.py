"""Model versions on disk: ``models/recs/<version>/`` with ``provenance.json``, and
``models/recs/latest`` — a symbolic link to the newest, replaced atomically (a reader sees
the old version or the new one, never half of either)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from movieflix_lab.provenance import git_sha, package_versions
from movieflix_lab.recs.model import RecsModel

__all__ = ["LATEST", "latest_version", "list_versions", "load_version", "save_version"]

LATEST = "latest"


def _new_version(root: Path) -> str:
    now = datetime.now(UTC)
    base = now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"
    version, n = base, 1
    while (root / version).exists():
        n += 1
        version = f"{base}-{n}"
    return version


def save_version(
    model: RecsModel, root: Path, provenance: dict[str, Any], *, make_latest: bool = True
) -> str:
    """Save ``model`` as a new version under ``root``; returns the version name."""
    root.mkdir(parents=True, exist_ok=True)
    version = _new_version(root)
    staging = root / f".{version}.tmp"
    model.save(staging)
    record = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "packages": package_versions("implicit", "numpy", "scipy", "polars", "movieflix-lab"),
        "hyperparameters": model.params.as_dict(),
        "confidence": model.confidence.as_dict(),
        "data_range": _range(model.data_range_ms),
        "users": len(model.users),
        "movies": len(model.movies),
        "interactions": model.interactions,
        **provenance,
    }
    (staging / "provenance.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    staging.rename(root / version)
    if make_latest:
        link = root / f".{LATEST}.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(version)
        os.replace(link, root / LATEST)
    return version


def _range(range_ms: tuple[int, int] | None) -> dict[str, str] | None:
    if range_ms is None:
        return None
    first, last = (datetime.fromtimestamp(ms / 1000, UTC).isoformat() for ms in range_ms)
    return {"first_event": first, "last_event": last}


def latest_version(root: Path) -> str | None:
    try:
        return os.readlink(root / LATEST)
    except OSError:
        return None


def list_versions(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and not p.name.startswith(".")
        and (p / "model.json").is_file()
    )


def load_version(root: Path, version: str = LATEST) -> tuple[RecsModel, dict[str, Any]]:
    """A saved version (``latest`` by default) and its provenance."""
    name = latest_version(root) if version == LATEST else version
    if name is None:
        raise FileNotFoundError(
            f"no recommendation model in {root}: run `movieflix-lab train recs`"
        )
    folder = root / name
    model = RecsModel.load(folder)
    provenance_file = folder / "provenance.json"
    provenance = json.loads(provenance_file.read_text()) if provenance_file.is_file() else {}
    provenance.setdefault("version", name)
    return model, provenance
