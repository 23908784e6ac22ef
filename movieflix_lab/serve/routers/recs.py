"""``GET /v1/recommendations/{user_id}`` and ``GET /v1/movies/{movie_id}/similar``.

The hot path is two plain Starlette routes, matched before every other route: FastAPI's
per-request machinery (dependency solving, parameter models) cost several times the
recommendation itself (``benchmarks/recommendations.py`` measures the endpoint). The
parameters are checked here, errors keep the app's shape (422 naming the field), and
:data:`OPENAPI_PATHS` declares both operations in the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from movieflix_lab.recs.model import RecsModel
from movieflix_lab.serve.auth import SECURED, refused, secret
from movieflix_lab.serve.errors import error_response
from movieflix_lab.serve.recs_service import RecsService

__all__ = ["OPENAPI_PATHS", "routes"]

MAX_N = 100
_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
NO_MODEL = (
    "no recommendation model yet: run `movieflix-lab train recs` (the serve app picks it up "
    "without a restart)"
)


def _parameter(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema,
            "description": description}  # fmt: skip


_N = _parameter("n", "query", {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": 10},
                f"How many movies (1-{MAX_N}).")  # fmt: skip
_GENRE = _parameter("genre", "query", {"type": "string"}, "Only movies of this genre.")


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message


def _count(request: Request) -> int:
    raw = request.query_params.get("n")
    if raw is None:
        return 10
    try:
        n = int(raw)
    except ValueError:
        raise _Invalid("n", f"must be an integer from 1 to {MAX_N}, not {raw!r}") from None
    if not 1 <= n <= MAX_N:
        raise _Invalid("n", f"must be from 1 to {MAX_N}, not {n}")
    return n


def _id(field: str, value: str) -> str:
    if not _ID.match(value):
        raise _Invalid(field, "letters, digits and _ . @ - only (1-128 characters)")
    return value


def _json(body: dict[str, Any]) -> Response:
    """orjson writes the Recommendation dataclasses directly (much faster than json.dumps)."""
    return Response(orjson.dumps(body), media_type="application/json")


def _invalid(error: _Invalid) -> Response:
    return error_response(
        422, "invalid request", [{"field": error.field, "message": error.message}]
    )


def _model(request: Request) -> tuple[RecsModel | None, RecsService | None]:
    service: RecsService | None = getattr(request.app.state, "recs", None)
    return (service.model if service else None), service


async def recommendations(request: Request) -> Response:
    """Ranked movies (title, genre, score), already-watched ones filtered; a user with no
    history gets recent popularity (``strategy: popularity``)."""
    if (denied := refused(request, secret(request.app.state.settings.read_api_key))) is not None:
        return denied
    user_id = request.path_params["user_id"]
    model, service = _model(request)
    try:
        _id("user_id", user_id)
        n = _count(request)
        genre = request.query_params.get("genre")
        if model is not None and genre is not None and genre not in model.genre_items:
            raise _Invalid("genre", f"unknown genre {genre!r}; known: {', '.join(model.genres())}")
    except _Invalid as error:
        return _invalid(error)
    if model is None or service is None:
        return error_response(503, NO_MODEL, headers={"retry-after": "5"})
    items, strategy = model.recommend_with_strategy(user_id, n, genre=genre)
    return _json(
        {
            "user_id": user_id,
            "model_version": service.version,
            "strategy": strategy,
            "items": items,
        }
    )


async def similar(request: Request) -> Response:
    """The movies whose ALS vectors are closest (cosine) to this one's."""
    if (denied := refused(request, secret(request.app.state.settings.read_api_key))) is not None:
        return denied
    movie_id = request.path_params["movie_id"]
    model, service = _model(request)
    try:
        _id("movie_id", movie_id)
        n = _count(request)
    except _Invalid as error:
        return _invalid(error)
    if model is None or service is None:
        return error_response(503, NO_MODEL, headers={"retry-after": "5"})
    try:
        items = model.similar(movie_id, n)
    except KeyError:
        return error_response(404, f"unknown movie {movie_id!r}")
    return _json({"movie_id": movie_id, "model_version": service.version, "items": items})


routes = [
    Route("/v1/recommendations/{user_id}", recommendations, methods=["GET"]),
    Route("/v1/movies/{movie_id}/similar", similar, methods=["GET"]),
]

_ID_SCHEMA = {"type": "string", "pattern": _ID.pattern}
_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorBody"}
_ERROR = {
    "description": "Invalid parameter (the field is named), unknown movie, or no model yet",
    "content": {"application/json": {"schema": _ERROR_SCHEMA}},
}
_ITEMS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "movie_id": {"type": "string"},
            "title": {"type": "string"},
            "genre": {"type": "string"},
            "score": {"type": "number"},
        },
        "required": ["movie_id", "title", "genre", "score"],
    },
}


def _operation(
    summary: str, parameters: list[dict[str, Any]], body: dict[str, Any]
) -> dict[str, Any]:
    return {
        "get": {
            "tags": ["recommendations"],
            "summary": summary,
            "parameters": parameters,
            "security": SECURED,
            "responses": {
                "200": {
                    "description": "Successful Response",
                    "content": {"application/json": {"schema": body}},
                },
                "401": _ERROR,
                "404": _ERROR,
                "422": _ERROR,
                "503": _ERROR,
            },
        }
    }


#: The two operations as OpenAPI paths (the app merges them into its document).
OPENAPI_PATHS: dict[str, Any] = {
    "/v1/recommendations/{user_id}": _operation(
        "Movies to recommend to a user",
        [_parameter("user_id", "path", _ID_SCHEMA, "The user."), _N, _GENRE],
        {
            "type": "object",
            "properties": {
                "user_id": {"type": "string"},
                "model_version": {"type": "string"},
                "strategy": {"type": "string", "enum": ["als", "popularity"]},
                "items": _ITEMS,
            },
            "required": ["user_id", "model_version", "strategy", "items"],
        },
    ),
    "/v1/movies/{movie_id}/similar": _operation(
        "Movies similar to a movie",
        [_parameter("movie_id", "path", _ID_SCHEMA, "The movie."), _N],
        {
            "type": "object",
            "properties": {
                "movie_id": {"type": "string"},
                "model_version": {"type": "string"},
                "items": _ITEMS,
            },
            "required": ["movie_id", "model_version", "items"],
        },
    ),
}
