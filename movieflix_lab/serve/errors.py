"""One shape for every error the serve app returns: ``{"error": ..., "detail": [...]}``."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

__all__ = ["ErrorBody", "ErrorItem", "error_response"]


class ErrorItem(BaseModel):
    field: str
    message: str
    #: The event's position in a batch.
    index: int | None = None


class ErrorBody(BaseModel):
    error: str
    detail: list[ErrorItem] = []


def error_response(
    status: int,
    error: str,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=error, detail=[ErrorItem(**item) for item in detail or []])
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)
