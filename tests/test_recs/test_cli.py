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


def test_eval_recs_json_scores_als_against_every_tuned_baseline(tmp_path: Path) -> None:
    done = run_cli("eval", "recs", "--json", "--users", "600", "--days", "10", env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for key in ("ndcg@10", "popularity_ndcg@10", "precision@10", "recall@10", "coverage",
                "map@10", "params", "tuning", "baselines", "best_baseline"):  # fmt: skip
        assert key in report
    baselines = report["baselines"]
    assert set(baselines) == {"popularity", "recent_popularity", "item_knn"}
    # Each baseline tuned on validation: its grid scored, the chosen point the best of it.
    for name, row in baselines.items():
        best_point = max(row["tuning"], key=lambda r: r["validation_ndcg@10"])
        assert {k: best_point[k] for k in row["params"]} == row["params"], name
        assert 0 < row["ndcg@10"] < 1, name
    # The ratio is over the *best* baseline, not over popularity alone.
    best = max(baselines, key=lambda name: baselines[name]["ndcg@10"])
    assert report["best_baseline"] == best
    assert report["ndcg_ratio"] == round(report["ndcg@10"] / baselines[best]["ndcg@10"], 3)
    assert report["popularity_ndcg@10"] == baselines["popularity"]["ndcg@10"]
    # The planted tastes are learnable: ALS is far ahead of plain popularity, and ahead of
    # every tuned baseline (item-kNN comes closest)...
    assert report["ndcg@10"] >= 2 * report["popularity_ndcg@10"] > 0
    assert report["ndcg_ratio"] > 1
    # ...and both goals are judged, each against its own ratio.
    over_best = next(g for g in report["goals"] if "best baseline" in g["name"])
    assert over_best["target"] == ">= 2x" and over_best["value"] == report["ndcg_ratio"]
    assert over_best["met"] is (report["ndcg_ratio"] >= 2)
    over_popularity = next(g for g in report["goals"] if "plain popularity" in g["name"])
    assert over_popularity["met"] is True
    # ALS tuned on validation: every grid point scored, the chosen one the best of them.
    best = max(report["tuning"], key=lambda row: row["validation_ndcg@10"])
    assert (best["factors"], best["alpha"], best["regularization"]) == (
        report["params"]["factors"],
        report["params"]["alpha"],
        report["params"]["regularization"],
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
