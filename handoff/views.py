"""The queue page (sales' home): unclaimed SQLs by priority, and the rep's own leads."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from crm.roles import ADMIN, MARKETING, SALES, role_required, roles_of
from handoff import services
from handoff.models import QueueEntry

Status = QueueEntry.Status
ACTIONS = {
    "claim": lambda request, pk: services.claim(entry_id=pk, rep=request.user),
    "touch": lambda request, pk: services.first_touch(
        entry_id=pk, rep=request.user, kind=request.POST.get("kind", ""), note=request.POST.get("note", "")[:2000]
    ),
    "accept": lambda request, pk: services.accept(entry_id=pk, rep=request.user),
    "reject": lambda request, pk: services.reject(
        entry_id=pk, rep=request.user, reason=request.POST.get("reason", ""), text=request.POST.get("text", "")[:2000]
    ),
    "won": lambda request, pk: services.won(entry_id=pk, rep=request.user),
    "lost": lambda request, pk: services.lost(entry_id=pk, rep=request.user),
}
DONE = {
    "claim": "Claimed.",
    "touch": "First touch logged.",
    "accept": "Accepted: it is an opportunity now.",
    "reject": "Sent back to marketing.",
    "won": "Marked won.",
    "lost": "Marked lost.",
}


def unclaimed_count() -> int:
    return QueueEntry.objects.filter(status=Status.WAITING).count()


def _board(request: HttpRequest, error: str = "", error_entry: int | None = None) -> dict:
    waiting = (
        QueueEntry.objects.filter(status=Status.WAITING)
        .select_related("contact", "contact__company")
        .order_by("-score", "entered_at")
    )
    mine = (
        QueueEntry.objects.filter(owner=request.user, status__in=(Status.CLAIMED, Status.WORKING, Status.ACCEPTED))
        .select_related("contact", "contact__company")
        .order_by("claimed_at")
    )
    return {
        "waiting": waiting[:200],
        "waiting_count": waiting.count(),
        "mine": mine,
        "error": error,
        "error_entry": error_entry,
        "can_work": bool(roles_of(request.user) & {SALES, ADMIN}),
        "reasons": QueueEntry.Reason.choices,
        "touches": QueueEntry.Touch.choices,
    }


@role_required(SALES, MARKETING, ADMIN)
def queue(request: HttpRequest) -> HttpResponse:
    if request.htmx and request.GET.get("part") == "badge":
        return render(request, "handoff/badge.html", {"unclaimed_count": unclaimed_count()})
    template = "handoff/queue.html#board" if request.htmx else "handoff/queue.html"
    return render(request, template, _board(request))


@require_POST
@role_required(SALES, ADMIN)
def act(request: HttpRequest, entry_id: int, action: str) -> HttpResponse:
    if action not in ACTIONS:
        return HttpResponse(status=404)
    try:
        ACTIONS[action](request, entry_id)
        error = ""
    except services.HandoffRefused as e:
        error = str(e)
    if not request.htmx:
        (messages.error if error else messages.success)(request, error or DONE[action])
        return redirect("queue")
    response = render(request, "handoff/queue.html#board", _board(request, error, entry_id if error else None))
    response["HX-Trigger"] = "queue-changed"
    return response
