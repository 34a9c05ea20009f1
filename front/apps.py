from __future__ import annotations

from django.apps import AppConfig


class FrontConfig(AppConfig):
    name = "front"
    verbose_name = "Pages people work in"

    def ready(self) -> None:
        # The reports' API lives with the reports; it joins the one API (before its URLs are built).
        from front.reports_api import router
        from leads.api import api

        api.add_router("/reports", router)
