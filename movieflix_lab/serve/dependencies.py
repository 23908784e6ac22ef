"""Shared dependencies of the routers, as ``Annotated`` aliases.

They are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a thread
hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from movieflix_lab.config import Settings
from movieflix_lab.serve.delivery import KafkaDelivery
from movieflix_lab.serve.metrics import GatewayMetrics

__all__ = ["DeliveryDep", "MetricsDep", "SettingsDep"]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _delivery(request: Request) -> KafkaDelivery:
    return request.app.state.delivery


async def _metrics(request: Request) -> GatewayMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
DeliveryDep = Annotated[KafkaDelivery, Depends(_delivery)]
MetricsDep = Annotated[GatewayMetrics, Depends(_metrics)]
