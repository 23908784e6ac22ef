"""API keys: who may write events, who may read user data, who may scrape metrics.

Three settings, each off when unset: ``MOVIEFLIX_API_KEY`` guards ``POST /v1/events``,
``MOVIEFLIX_READ_API_KEY`` every endpoint that answers with user data (fraud alerts,
recommendations, similar movies), ``MOVIEFLIX_METRICS_API_KEY`` ``/metrics``. ``/healthz``
and ``/readyz`` stay open. A key is sent as ``X-API-Key: KEY`` or ``Authorization: Bearer
KEY`` and compared in constant time; a missing or wrong one gets a 401 in the app's error
shape. The OpenAPI document declares both schemes on the guarded operations.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from movieflix_lab.serve.errors import ErrorBody, error_response

__all__ = ["SECURED", "SECURITY_SCHEMES", "UNAUTHORIZED", "authorized", "refused", "secret"]

SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer"},
}
#: An operation's ``security``: either scheme will do.
SECURED: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]
#: The 401 an operation with a key declares.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key."}
}


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def authorized(request: Request, expected: str) -> bool:
    given = request.headers.get("x-api-key")
    if given is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token if scheme.lower() == "bearer" else None
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def refused(request: Request, expected: str | None) -> JSONResponse | None:
    """The 401 to answer when ``expected`` is set and the request does not carry it."""
    if expected is None or authorized(request, expected):
        return None
    return error_response(
        401,
        "missing or wrong API key",
        [{"field": "X-API-Key", "message": "send the key in the X-API-Key header"}],
        headers={"www-authenticate": "ApiKey"},
    )
