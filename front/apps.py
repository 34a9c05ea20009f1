from __future__ import annotations

from django.apps import AppConfig


class FrontConfig(AppConfig):
    name = "front"
    verbose_name = "Pages people work in"
