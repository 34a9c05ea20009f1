from __future__ import annotations

from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"

    def ready(self) -> None:
        # Criteria as code joins the one API (before its URLs are built).
        from leads.api import api
        from scoring.api import router

        api.add_router("/", router)
