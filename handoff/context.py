from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from crm.roles import ADMIN, SALES, roles_of
from handoff.views import badge


def unclaimed_badge(request: HttpRequest) -> dict[str, Any]:
    """The navigation's unclaimed-SQL count: one short query, on the pages of people who work the queue."""
    if not roles_of(request.user) & {SALES, ADMIN}:
        return {}
    return badge(request)
