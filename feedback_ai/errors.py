"""Errors of feedback_ai. Each carries the HTTP status the API renders it with.

Tree::

    FeedbackAIError (500)
    ├── InvalidInput (422)       bad request data; `detail` names what and where
    │   └── PayloadTooLarge (413)
    ├── Unauthenticated (401)    missing or unknown API key
    ├── Forbidden (403)          key lacks the scope
    ├── NotFound (404)           no such item / job in this workspace
    ├── Conflict (409)
    └── Unavailable (503)        store, broker or model not ready

The API has one handler that renders `{"error": <code>, "detail": ...}`.
"""

from __future__ import annotations

from typing import Any


class FeedbackAIError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if isinstance(detail, dict):  # structured detail keeps the sentence too
            detail = {"message": message, **detail}
        self.detail = detail if detail is not None else message


class InvalidInput(FeedbackAIError):
    status_code = 422
    code = "invalid_input"


class PayloadTooLarge(InvalidInput):
    status_code = 413
    code = "payload_too_large"


class Unauthenticated(FeedbackAIError):
    status_code = 401
    code = "unauthenticated"


class Forbidden(FeedbackAIError):
    status_code = 403
    code = "forbidden"


class NotFound(FeedbackAIError):
    status_code = 404
    code = "not_found"


class Conflict(FeedbackAIError):
    status_code = 409
    code = "conflict"


class Unavailable(FeedbackAIError):
    status_code = 503
    code = "unavailable"
