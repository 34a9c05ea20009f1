from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from crm import health


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    result = health.report()
    return JsonResponse(result, status=200 if result["status"] == "ok" else 503)


class PasswordReset(auth_views.PasswordResetView):
    """Django's reset view, handing the request to the form (its throttle counts per client address)."""

    def get_form_kwargs(self):
        return super().get_form_kwargs() | {"request": self.request}
