# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: MovieFlix Lab
#     language: python
#     name: movieflix-lab
# ---

# %% [markdown]
# # 02 · Fraud review
# Alerts against the labels: precision and recall per detector and per scenario, how soon each incident was caught, and example incidents with their evidence.

# %% tags=["parameters"]
# "simulate": a labelled seeded scenario through the detectors in one batch (no Kafka);
# "topic": the alerts on fraud-signals scored against a simulation's labels (labels = its folder)
source: str = "simulate"
seed: int = 7
users: int = 800
minutes: float = 180.0
activity: float = 4.0
sim_start: str = "2026-11-01T18:00:00+00:00"
labels: str = ""
# topic only: the alerts' event-time range (ISO 8601; empty = all of fraud-signals)
start: str = ""
end: str = ""
examples: int = 3

# %%
from datetime import datetime

import polars as pl

from movieflix_lab import lab
from movieflix_lab.fraud.evaluate import score_alerts

lab.offline()
rates = {"binge_bot": 4.0, "credential_stuffing": 4.0, "account_takeover": 3.0, "quiet_takeover": 3.0,
         "account_sharing": 3.0, "slow_stuffing": 2.0, "scraper": 3.0, "human_binger": 4.0, "shared_ip": 4.0,
         "new_device": 3.0}
if source == "simulate":
    alerts, incidents, events = lab.fraud_replay(seed, users, minutes, activity=activity, incident_rates=rates,
                                                 start=datetime.fromisoformat(sim_start))
    ranked = lab.fraud_ranking(seed, users, minutes, activity=activity, incident_rates=rates,
                               start=datetime.fromisoformat(sim_start))
    print(f"{events:,} events, {len(incidents)} labelled incidents, {len(alerts)} alerts")
elif source == "topic":
    from pathlib import Path
    folder = Path(labels)
    incidents = pl.read_parquet(folder / "labels.parquet").to_dicts()
    alerts = lab.read_topic("fraud-signals", start=start or None, end=end or None).to_dicts()
    ranked = lab.fraud_ranking(labels=folder)
    print(f"{len(incidents)} labelled incidents in {folder}, {len(alerts)} alerts on fraud-signals")
else:
    raise ValueError(f"source must be 'simulate' or 'topic', not {source!r}")
# One row per alert id, at its highest revision (a rule revises an alert whose decisive event a late event moved)
alerts = list({a["alert_id"]: a for a in sorted(alerts, key=lambda a: a.get("revision", 0))}.values())
score = score_alerts(alerts, incidents)
print(f"precision {score.precision:.3f}, recall {score.recall:.3f}, F1 {score.f1:.3f}")

# %% [markdown]
# ## Per detector and per scenario

# %%
def scalars(row):
    return {k.replace("_", " "): v for k, v in row.items() if not isinstance(v, (list, dict))}

lab.table([{"detector": d, **scalars(row)} for d, row in score.per_detector.items()],
          caption="per detector: alerts raised, those on a labelled incident, precision and recall (shares, 0 to 1)")

# %%
lab.table([{"scenario": s, **scalars(row)} for s, row in score.per_scenario.items()],
          caption="per labelled scenario: incidents and how many an alert found")

# %% [markdown]
# ## How the River score ranks each scenario
# Each (entity, hour) of the run is scored by the model's highest score in it; the hours an incident spans on its entity are the positives, the hours of entities in no fraud incident the negatives. ROC-AUC and PR-AUC (average precision) per fraud scenario; the curves show the precision an alert bar would buy at each recall. The model's bars were chosen on a validation simulation of another seed (`movieflix-lab train fraud`).

# %%
lab.table([{"scenario": s, "entity": r["entity"], "incident entity-hours": r["positives"],
            "ordinary entity-hours": r["negatives"], "ROC-AUC": r["roc_auc"], "PR-AUC": r["pr_auc"]}
           for s, r in ranked.items()], caption="areas under the curves, 0 to 1 (1: every incident hour ranked first)")

# %%
curves = pl.DataFrame([{"scenario": s, **point} for s, r in ranked.items() for point in r["pr_curve"]])
lab.pr_curves(curves, title="River score: precision against recall, per fraud scenario",
              caption="Up and right is better: the precision an alert bar keeps at each share of incidents found.")

# %%
print(f"false alerts on hard negatives: {score.hard_negative_false_alerts or 'none'}; on other traffic: {score.background_false_alerts}")

# %%
timeline = pl.DataFrame([{"event_time": a["event_time"], "detector": a["detector"]} for a in alerts]).with_columns(pl.col("event_time").str.to_datetime(time_zone="UTC"))
lab.alert_timeline(timeline, time="event_time", title="Alerts by event time, per detector",
                   caption="One tick per alert, at its decisive event: bursts show incidents, a steady drizzle false alerts.")

# %% [markdown]
# ## How soon: event time from an incident's start to its first alert

# %%
rows = []
for incident in incidents:
    if not incident["is_fraud"]:
        continue
    start_ms = int(incident["start"].timestamp() * 1000)
    mine = [a for a in alerts if a["entity_id"] == incident["entity_id"] or a["entity_id"] in (incident["user_ids"] or [])]
    mine = [a for a in mine if a["event_time_ms"] >= start_ms - 300_000]
    if mine:
        rows.append({"scenario": incident["scenario"], "minutes_to_first_alert": (min(a["event_time_ms"] for a in mine) - start_ms) / 60_000})
delays = pl.DataFrame(rows, schema={"scenario": pl.String, "minutes_to_first_alert": pl.Float64})
lab.table(delays.group_by("scenario").agg(pl.len().alias("incidents caught"),
                                          pl.col("minutes_to_first_alert").median().alias("median (min)"),
                                          pl.col("minutes_to_first_alert").max().alias("slowest (min)")).sort("scenario"),
          caption="event time from an incident's first event to its first alert")

# %% [markdown]
# ## Example incidents and their evidence

# %%
def evidence(found):
    """An alert's evidence in one line: what it holds (a topic's rows carry every key of every
    detector, empty where not theirs), long lists cut to their first few."""
    parts = []
    for key, value in found.items():
        if value is None:
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items() if v is not None)
        elif isinstance(value, list):
            value = f"{len(value)} ({', '.join(map(str, value[:2]))}{', …' if len(value) > 2 else ''})"
        parts.append(f"{key}: {value}")
    return "; ".join(parts)

shown_rows = []
for scenario in ("binge_bot", "credential_stuffing", "account_takeover", "quiet_takeover", "account_sharing", "slow_stuffing", "scraper"):
    shown = 0
    for incident in incidents:
        if incident["scenario"] != scenario or shown >= examples:
            continue
        suspects = incident.get("suspect_ids")
        mine = [a for a in alerts if a["entity_id"] == incident["entity_id"] or a["entity_id"] in ((incident["user_ids"] if suspects is None else suspects) or [])]
        if not mine:
            continue
        shown += 1
        first = min(mine, key=lambda a: a["event_time_ms"])
        shown_rows.append({"scenario": scenario, "entity": incident["entity_id"], "detector": first["detector"],
                           "severity": first["severity"], "decisive event (UTC)": first["event_time"][:19].replace("T", " "),
                           "evidence": evidence(first["evidence"])})
lab.table(shown_rows, caption="the first alert on each example incident, with the evidence it carries") if shown_rows else print("no incident was alerted")

# %%
lab.key_numbers(alerts=len(alerts), incidents=len(incidents), precision=score.precision, recall=score.recall, f1=score.f1,
                per_detector={d: row["alerts"] for d, row in score.per_detector.items()})
