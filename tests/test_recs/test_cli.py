"""``eval recs``, ``import movielens`` and ``train recs --data`` as a user runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from movieflix_lab.recs.store import latest_version, load_version
from tests.fixtures.cli import run_cli
from tests.fixtures.movielens import WRITERS


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEFLIX_")}
    env["MOVIEFLIX_DATA_DIR"] = str(tmp_path / "data")
    env["MOVIEFLIX_MODELS_DIR"] = str(tmp_path / "models")
    return env


def test_eval_recs_json_on_the_simulated_history_meets_the_goal(tmp_path: Path) -> None:
    done = run_cli("eval", "recs", "--json", "--users", "600", "--days", "10", env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for key in ("ndcg@10", "popularity_ndcg@10", "precision@10", "recall@10", "coverage",
                "map@10", "params", "tuning"):  # fmt: skip
        assert key in report
    assert report["ndcg@10"] >= 2 * report["popularity_ndcg@10"] > 0
    [goal] = report["goals"]
    assert goal["name"] == "NDCG@10 of ALS over popularity's" and goal["target"] == ">= 2x"
    assert goal["met"] is True and goal["value"] == report["ndcg_ratio"]
    # Tuned on validation: every grid point scored, the chosen one the best of them.
    best = max(report["tuning"], key=lambda row: row["validation_ndcg@10"])
    assert (best["factors"], best["alpha"]) == (
        report["params"]["factors"],
        report["params"]["alpha"],
    )


def test_import_train_and_eval_on_movielens(tmp_path: Path) -> None:
    env = _env(tmp_path)
    source = WRITERS["ml-100k"](tmp_path / "ml-100k")
    out = tmp_path / "imported"
    done = run_cli("import", "movielens", str(source), "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert "ml-100k: 400 ratings of 40 movies by 40 users" in done.stdout
    assert (out / "interactions.parquet").is_file() and (out / "movies.parquet").is_file()

    done = run_cli("train", "recs", "--data", str(out), "--no-tune", env=env)
    assert done.returncode == 0, done.stderr
    root = tmp_path / "models" / "recs"
    version = latest_version(root)
    assert version and f"model {version}" in done.stdout
    model, provenance = load_version(root)
    assert provenance["source"]["kind"] == "interactions"
    assert provenance["metrics"]["ndcg@10"] > provenance["metrics"]["popularity_ndcg@10"]
    assert len(model.movies) == 40 and model.catalog.titles[0].startswith("Movie ")

    done = run_cli("eval", "recs", "--data", str(source), "--json", "--no-tune", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["data"]["layout"] == "ml-100k"


def test_bad_data_path_is_one_line(tmp_path: Path) -> None:
    done = run_cli("eval", "recs", "--data", str(tmp_path / "nope"), env=_env(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error:") and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
