from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from leads import views
from leads.api import api


def public(patterns: list[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    """Exempt API views from LoginRequiredMiddleware: the API authenticates by key (django-ninja#1461)."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            public(pattern.url_patterns)
        else:
            pattern.callback.login_required = False
    return patterns


api_patterns, api_app, api_namespace = api.urls

urlpatterns = [
    path("api/v1/", (public(api_patterns), api_app, api_namespace)),
    path("f/<str:slug>", views.hosted_form, name="hosted_form"),
    path("f/<str:slug>/thanks", views.form_thanks, name="form_thanks"),
]
