"""Shared dependencies of the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from movieflix_lab.config import Settings
from movieflix_lab.serve.delivery import KafkaDelivery
from movieflix_lab.serve.metrics import GatewayMetrics

__all__ = ["DeliveryDep", "MetricsDep", "SettingsDep"]


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _delivery(request: Request) -> KafkaDelivery:
    return request.app.state.delivery


def _metrics(request: Request) -> GatewayMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
DeliveryDep = Annotated[KafkaDelivery, Depends(_delivery)]
MetricsDep = Annotated[GatewayMetrics, Depends(_metrics)]
