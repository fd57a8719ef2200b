"""One error shape for every failure: `{"error": <code>, "detail": ...}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from feedback_ai.errors import FeedbackAIError


def _render(
    status: int, code: str, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": code, "detail": jsonable_encoder(detail)}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        if err.get("type") == "json_invalid":
            why = err.get("ctx", {}).get("error", "")
            msg = f"body is not valid JSON (or not valid UTF-8): {why}"
        out.append({"loc": ".".join(loc), "reason": msg})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(FeedbackAIError)
    async def _domain(_: Request, exc: FeedbackAIError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return _render(exc.status_code, exc.code, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _render(422, "invalid_input", _validation_detail(exc))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = exc.detail
        if exc.status_code == 400 and "parsing the body" in str(detail):
            code, detail = "invalid_body", "the body is not valid JSON in UTF-8"
        return _render(exc.status_code, code, detail)
