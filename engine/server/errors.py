"""JSON error bodies for every failure, and the mapping of earmark's named errors to HTTP codes.

Every error a client sees has the shape ``{"error": {"code": str, "message": str, ...}}``.
Unexpected exceptions are logged with their traceback on the server and answered with a
500 that carries no internals.
"""
from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..audio import AudioError
from ..encoders.base import EncoderError
from ..evidence.errors import EvidenceError
from ..library import LibraryError
from ..lock import LibraryLocked
from ...index.db import StoreError

log = logging.getLogger("earmark.server")


class ApiError(Exception):
    """An error answered as JSON with ``status`` (HTTP code), a stable ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **details: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **details}}, status_code=status,
                        headers=headers)


def _query_error_classes() -> tuple[type[Exception], type[Exception]] | None:
    """The query parser's errors, when the engine has a query parser."""
    try:
        from ..query.parse import QuerySyntaxError, UnknownConceptError
    except ImportError:
        return None
    return QuerySyntaxError, UnknownConceptError


def install_error_handlers(app: FastAPI) -> None:
    """Register JSON handlers for HTTP, validation, earmark and unexpected errors."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, **exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # The field path and the reason; the offending input is not echoed back.
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e.get("msg", "")}
                    for e in exc.errors()]
        text = "; ".join(f"{p['field']}: {p['problem']}" for p in problems) or "invalid request"
        return error_response(422, "invalid_request", text, problems=problems)

    mapping: list[tuple[type[Exception], int, str]] = [
        (LibraryLocked, 409, "library_locked"),
        (AudioError, 422, "bad_audio"),
        (EvidenceError, 422, "evidence_unavailable"),
        (EncoderError, 503, "encoder_unavailable"),
        (StoreError, 503, "store_unavailable"),
        (LibraryError, 400, "library_error"),
    ]
    for cls, status, code in mapping:
        app.add_exception_handler(cls, _fixed(status, code))

    query_errors = _query_error_classes()
    if query_errors is not None:
        syntax_cls, unknown_cls = query_errors

        async def _unknown_concept(_: Request, exc: Exception) -> JSONResponse:
            return error_response(400, "unknown_concept", str(exc),
                                  suggestions=list(getattr(exc, "suggestions", []) or []))

        async def _query_syntax(_: Request, exc: Exception) -> JSONResponse:
            # which part of the request was wrong: the query text, or a parameter such as "aggregate"
            field = getattr(exc, "field", None)
            return error_response(400, "query_syntax", str(exc), **({"field": field} if field else {}))

        app.add_exception_handler(unknown_cls, _unknown_concept)
        app.add_exception_handler(syntax_cls, _query_syntax)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from ...index.write_errors import describe_write_error, write_fault

        fault = write_fault(exc)  # a full disk or read-only library is the operator's to fix
        if fault is not None:
            log.error("storage fault on %s %s: %s", request.method, request.url.path, exc)
            return error_response(507 if fault == "disk-full" else 503, "storage", describe_write_error(exc, files=False))
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal server error; the server log has the details")


def _fixed(status: int, code: str):
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return error_response(status, code, str(exc))

    return handler
