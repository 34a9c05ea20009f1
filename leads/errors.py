"""The JSON API's error answers, in the one shape API.md promises."""

from __future__ import annotations

from django.http import JsonResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[dict] | None = None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        body = {"error": self.code, "message": self.message, "details": self.details}
        return JsonResponse(body, status=self.status, headers=self.headers)


def invalid(details: list[dict], message: str = "") -> ApiError:
    count = len(details)
    message = message or f"{count} problem{'s' if count != 1 else ''} in the request; nothing was stored."
    return ApiError(400, "invalid", message, details)


def form_invalid(form) -> ApiError:
    """A Django form's errors as a 400 in the API's shape (field None for the form as a whole)."""
    return invalid(
        [
            {"index": None, "field": None if name == "__all__" else name, "message": str(message)}
            for name, messages in form.errors.items()
            for message in messages
        ]
    )


def malformed(message: str) -> ApiError:
    return ApiError(400, "malformed", message)


def too_large(message: str) -> ApiError:
    return ApiError(413, "too_large", message)


def unauthorized(message: str = "Send a valid API key as 'Authorization: Bearer <key>'.") -> ApiError:
    return ApiError(401, "unauthorized", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def unavailable() -> ApiError:
    return ApiError(503, "unavailable", "The database is unreachable; nothing was stored. Retry later.")
