"""Liveness, readiness and metrics."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from movieflix_lab.serve.auth import SECURED, UNAUTHORIZED, refused, secret
from movieflix_lab.serve.dependencies import DeliveryDep, MetricsDep, SettingsDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Kafka is reachable and the topics exist")
async def readyz(delivery: DeliveryDep) -> JSONResponse:
    try:
        missing = await anyio.to_thread.run_sync(delivery.probe)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "kafka": str(exc)}, status_code=503)
    if (failing := delivery.failing) is not None:  # brokers answer, writes are not confirmed
        return JSONResponse({"status": "unavailable", "kafka": failing}, status_code=503)
    if missing:
        return JSONResponse(
            {"status": "unavailable", "kafka": "up", "missing_topics": missing}, status_code=503
        )
    return JSONResponse({"status": "ready", "kafka": "up"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "The Prometheus text format."}, **UNAUTHORIZED},
    openapi_extra={"security": [*SECURED, {}]},  # keyed only when MOVIEFLIX_METRICS_API_KEY is
)  # fmt: skip
async def metrics(
    request: Request, settings: SettingsDep, metrics: MetricsDep, delivery: DeliveryDep
) -> Response:
    if (denied := refused(request, secret(settings.metrics_api_key))) is not None:
        return denied
    metrics.kafka_up.set(1 if delivery.kafka_up else 0)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
