"""Error answers: JSON in the API's shape under /api/, a page with a way back everywhere else."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader

API_PREFIX = "/api/"
MESSAGES = {
    400: ("malformed", "The request could not be read."),
    403: ("forbidden", "You do not have access to this."),
    404: ("not_found", "There is nothing at this address."),
    500: ("internal", "Something went wrong on our side; nothing was stored."),
}


def _answer(request: HttpRequest, status: int) -> HttpResponse | None:
    if request.path.startswith(API_PREFIX):
        code, message = MESSAGES[status]
        return JsonResponse({"error": code, "message": message, "details": []}, status=status)
    return None


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, 400) or render(request, "errors/400.html", status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, 403) or render(request, "errors/403.html", status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, 404) or render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # No context processors: whatever failed (the database, say) must not fail the error page too.
    return _answer(request, 500) or HttpResponse(loader.get_template("errors/500.html").render(), status=500)
