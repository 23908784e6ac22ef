"""The serve app: the event gateway, recommendations and fraud alerts."""

from __future__ import annotations

import gc
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from movieflix_lab import __version__
from movieflix_lab.config import Settings, get_settings
from movieflix_lab.serve.auth import SECURITY_SCHEMES
from movieflix_lab.serve.delivery import KafkaDelivery
from movieflix_lab.serve.errors import error_response
from movieflix_lab.serve.metrics import GatewayMetrics
from movieflix_lab.serve.recs_service import RecsService
from movieflix_lab.serve.routers import events, fraud, health, recs

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


class RequestCounter:
    """Counts requests by route and status (plain ASGI: no per-request task or copy)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, str(status)).inc()


class CatchAll:
    """Any exception a route lets escape becomes a JSON 500 in the app's error shape, with a
    request id (``X-Request-ID``) that the log line with the traceback carries too: the
    client gets an answer and the connection stays open."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            request_id = uuid.uuid4().hex
            logger.exception("unexpected error answering %s %s (request id %s)",
                             scope.get("method"), scope.get("path"), request_id)  # fmt: skip
            if started:  # the answer was under way: nothing sane to add to it
                raise
            response = error_response(
                500, "internal error",
                [{"field": "request", "message": f"request id {request_id}: the error is logged"}],
                headers={"x-request-id": request_id},
            )  # fmt: skip
            await response(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.delivery = KafkaDelivery(settings, on_state=app.state.metrics.kafka_up.set)
        try:
            missing = app.state.delivery.probe(timeout=5.0)
            if missing:
                logger.warning("topics missing: %s (run `movieflix-lab topics create`)", missing)
        except Exception as exc:  # start anyway: /readyz reports it, ingestion answers 503
            logger.warning("Kafka not reachable at start-up: %s", exc)
        app.state.recs = RecsService(settings).start()
        gc.freeze()  # start-up objects never need collecting: shorter GC pauses under load
        yield
        app.state.delivery.close()
        app.state.recs.close()
        app.state.metrics.close()
        if getattr(app.state, "alert_feed", None) is not None:
            app.state.alert_feed.close()

    app = FastAPI(
        title="MovieFlix Lab",
        version=__version__,
        summary="Event gateway into Kafka; recommendations and fraud alerts.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = GatewayMetrics()

    app.add_middleware(CatchAll)
    app.add_middleware(RequestCounter, metrics=app.state.metrics)

    # Routes are matched in order and matching costs: the hot paths first.
    app.router.routes[0:0] = recs.routes
    app.include_router(events.router)
    app.include_router(health.router)
    app.include_router(fraud.router)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """Query and path parameters: 422 naming each parameter, in the app's error shape."""
        detail = [
            {"field": ".".join(str(p) for p in error["loc"][1:]) or str(error["loc"][0]),
             "message": error["msg"]}
            for error in exc.errors()
        ]  # fmt: skip
        return error_response(422, "invalid request", detail)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            # The event models the ingestion body refers to.
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                events.body_definitions()
            )
            schema.setdefault("paths", {}).update(recs.OPENAPI_PATHS)
            schema["components"]["securitySchemes"] = SECURITY_SCHEMES
            # Invalid parameters are answered in the app's error shape (``invalid_request``),
            # not FastAPI's default: say so in the document.
            text = json.dumps(schema).replace(
                "#/components/schemas/HTTPValidationError", "#/components/schemas/ErrorBody"
            )
            schema = json.loads(text)
            for unused in ("HTTPValidationError", "ValidationError"):
                schema["components"]["schemas"].pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
