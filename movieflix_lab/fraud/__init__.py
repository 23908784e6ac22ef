"""Fraud detection without Kafka: rules, the River model, alerts and their scoring.

The stream app (:mod:`movieflix_lab.streams.fraud`) runs :class:`FraudDetector` over the
topics; a notebook runs the same object over a DataFrame's rows.
"""

from movieflix_lab.fraud.alerts import DETECTORS, Alert
from movieflix_lab.fraud.detector import FraudDetector
from movieflix_lab.fraud.evaluate import FraudScore, login_scores, roc_auc, score_alerts
from movieflix_lab.fraud.model import FEATURES, ModelConfig, OnlineFraudModel
from movieflix_lab.fraud.rules import RuleConfig, RuleEngine

__all__ = [
    "DETECTORS",
    "FEATURES",
    "Alert",
    "FraudDetector",
    "FraudScore",
    "ModelConfig",
    "OnlineFraudModel",
    "RuleConfig",
    "RuleEngine",
    "login_scores",
    "roc_auc",
    "score_alerts",
]
