"""The JSON error answer of the API and the webhooks: ``{"error": {"code": …, "message": …, …}}``.

Apart from web.api so that what the API's routes use (web.auth's token check) can fail in this shape
without importing the API package."""

from __future__ import annotations

from typing import Any, NoReturn

from flask import Response, jsonify


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def fail(status: int, code: str, message: str, **extra: Any) -> NoReturn:
    raise ApiError(status, code, message, **extra)


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    response = jsonify(error={"code": code, "message": message, **extra})
    response.status_code = status
    return response
