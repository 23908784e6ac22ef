"""``GET /v1/fraud/alerts``: recent alerts from ``fraud-signals``, newest first.

The serve app follows the topic from its beginning in a background thread (started by the
first request) and keeps the newest alerts in memory, one per ``alert_id`` (a replayed
alert replaces its earlier copy).
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from movieflix_lab.config import Settings
from movieflix_lab.kafka.catalog import FRAUD_SIGNALS
from movieflix_lab.kafka.tail import TopicTail
from movieflix_lab.serve.auth import SECURED, UNAUTHORIZED, refused, secret
from movieflix_lab.serve.dependencies import SettingsDep
from movieflix_lab.serve.errors import error_response

__all__ = ["AlertFeed", "router"]

router = APIRouter(prefix="/v1/fraud", tags=["fraud"])

#: Alerts kept in memory (the newest); older ones stay on the topic.
KEPT = 50_000


class AlertFeed:
    """The newest alerts on ``fraud-signals``, deduplicated on ``alert_id`` (each at its
    highest ``revision``)."""

    def __init__(self, settings: Settings) -> None:
        self._tail = TopicTail(settings, FRAUD_SIGNALS.name, start="beginning", capacity=KEPT)
        self.complete = self._tail.caught_up(timeout=10)

    def query(
        self, *, since_ms: int | None, user_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        unique: dict[str, dict[str, Any]] = {}
        for received in self._tail.snapshot():
            alert = received.value
            if "alert_id" in alert:
                kept = unique.get(alert["alert_id"])
                if kept is None or alert.get("revision", 0) >= kept.get("revision", 0):
                    unique[alert["alert_id"]] = alert  # the highest revision
        chosen = [
            alert
            for alert in unique.values()
            if (since_ms is None or alert.get("detected_at_ms", 0) >= since_ms)
            and (user_id is None or user_id in (alert.get("user_ids") or [alert.get("entity_id")]))
        ]
        chosen.sort(key=lambda a: (a.get("detected_at_ms", 0), a["alert_id"]), reverse=True)
        return chosen[:limit]

    def close(self) -> None:
        self._tail.stop()


_lock = threading.Lock()

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(text: str) -> datetime | None:
    if not _RFC3339.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:  # a month 13, a second 61
        return None


def _feed(request: Request, settings: Settings) -> AlertFeed:
    with _lock:
        feed = getattr(request.app.state, "alert_feed", None)
        if feed is None:
            feed = AlertFeed(settings)
            request.app.state.alert_feed = feed
        return feed


@router.get(
    "/alerts",
    summary="Recent fraud alerts, newest first",
    responses=UNAUTHORIZED,
    openapi_extra={"security": SECURED},
)
async def alerts(
    request: Request,
    settings: SettingsDep,
    since: Annotated[
        str | None,
        Query(
            description="Only alerts detected at or after this RFC 3339 date-time, e.g."
            " 2026-11-24T18:00:00Z.",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    user_id: Annotated[
        str | None,
        Query(description="Only alerts about this user.", pattern=r"^[A-Za-z0-9_.@-]{1,64}$"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
) -> JSONResponse:
    if (denied := refused(request, secret(settings.read_api_key))) is not None:
        return denied
    try:
        feed = await anyio.to_thread.run_sync(_feed, request, settings)
    except Exception as exc:
        return error_response(
            503, f"cannot read {FRAUD_SIGNALS.name}: {exc}", headers={"Retry-After": "5"}
        )
    since_ms = None
    if since is not None:
        moment = _rfc3339(since)
        if moment is None:
            message = f"{since!r} is not an RFC 3339 date-time (e.g. 2026-11-24T18:00:00Z)"
            return error_response(422, "invalid request", [{"field": "since", "message": message}])
        since_ms = int(moment.timestamp() * 1000)
    chosen = feed.query(since_ms=since_ms, user_id=user_id, limit=limit)
    return JSONResponse({"alerts": chosen, "count": len(chosen), "complete": feed.complete})
