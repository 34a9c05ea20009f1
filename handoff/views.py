"""The queue page (sales' home): the rep's own leads and offers, the waiting SQLs by priority a page at a time,
and the rep's closed handoffs. An action answers with what it changed (htmx out-of-band swaps), not the board."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from crm.roles import ADMIN, MARKETING, SALES, role_required, roles_of
from handoff import business_time, services
from handoff.forms import PageForm, RejectForm, TouchForm
from handoff.models import Desk, QueueEntry, Rep

Status = QueueEntry.Status
PER_PAGE = 50
BADGE_MOST = 99  # the navigation's badge counts this many unclaimed SQLs, then says 99+
UNREAD = object()  # the desk's calendar, not read yet
# What the rows' forms offer.
CHOICES = {
    "reasons": QueueEntry.Reason.choices,
    "lost_reasons": QueueEntry.LostReason.choices,
    "touches": QueueEntry.Touch.choices,
}
CLOSED = (Status.ACCEPTED, Status.WON, Status.LOST, Status.REJECTED)


def _parsed(form_class, request: HttpRequest) -> dict:
    """The action's input, parsed; a refusal saying what is wrong otherwise."""
    form = form_class(request.POST)
    if not form.is_valid():
        raise services.HandoffRefused(" ".join(e for errors in form.errors.values() for e in errors))
    return form.cleaned_data


ACTIONS = {
    "claim": lambda request, pk: services.claim(entry_id=pk, rep=request.user),
    "decline": lambda request, pk: services.decline(entry_id=pk, rep=request.user),
    "touch": lambda request, pk: services.first_touch(entry_id=pk, rep=request.user, **_parsed(TouchForm, request)),
    "accept": lambda request, pk: services.accept(entry_id=pk, rep=request.user),
    "reject": lambda request, pk: services.reject(entry_id=pk, rep=request.user, **_parsed(RejectForm, request)),
    "won": lambda request, pk: services.won(entry_id=pk, rep=request.user),
    "lost": lambda request, pk: services.lost(entry_id=pk, rep=request.user, reason=request.POST.get("reason", "")),
}
DONE = {
    "claim": "Claimed.",
    "next": "Claimed the top lead.",
    "decline": "Passed on: it is open to everyone now.",
    "touch": "First touch logged.",
    "accept": "Accepted: it is an opportunity now.",
    "reject": "Sent back to marketing.",
    "won": "Marked won.",
    "lost": "Marked lost.",
}


def unclaimed_count(request: HttpRequest | None = None) -> int:
    """SQLs waiting for a rep; counted once per request (the badge and the page share it)."""
    if request is not None and hasattr(request, "_unclaimed_count"):
        return request._unclaimed_count
    count = QueueEntry.objects.filter(status=Status.WAITING).count()
    if request is not None:
        request._unclaimed_count = count
    return count


def badge(request: HttpRequest) -> dict[str, Any]:
    """The navigation badge: the page's own count of waiting SQLs when it made one, else counted only as far as
    the badge shows (at most BADGE_MOST + 1 entries read, not thousands on every page)."""
    count = getattr(request, "_unclaimed_count", None)
    if count is None:
        if not hasattr(request, "_badge_count"):  # once per request: the badge's poll renders it twice
            request._badge_count = QueueEntry.objects.filter(status=Status.WAITING)[: BADGE_MOST + 1].count()
        count = request._badge_count
    return {"unclaimed_count": count, "unclaimed_label": f"{BADGE_MOST}+" if count > BADGE_MOST else str(count)}


def _clock(calendar, now, due_at) -> dict | None:
    """An SLA clock: its due time, and with business hours the working time left and whether it runs now."""
    if due_at is None:
        return None
    if calendar is None:
        return {"due": due_at}
    try:
        minutes = round(business_time.left(calendar, now, due_at).total_seconds() / 60)
        running = calendar.is_open(now)
    except ValueError:  # a calendar with no working time ahead (the settings form refuses one)
        return {"due": due_at}
    hours, rest = divmod(abs(minutes), 60)
    text = f"{hours} h {rest} min" if hours else f"{rest} min"
    text = f"overdue {text} of working time" if minutes < 0 else f"{text} of working time left"
    return {"due": due_at, "working_minutes": minutes, "running": running, "text": text}


def _mine(request: HttpRequest, now, calendar=UNREAD) -> dict:
    """The rep's claimed, touched and accepted entries, and offers (one query; the calendar only when a
    first-touch clock runs)."""
    held = Q(owner=request.user, status__in=(Status.CLAIMED, Status.WORKING, Status.ACCEPTED))
    offered = Q(offered_to=request.user, status=Status.WAITING, offer_expires_at__gt=now)
    both = list(QueueEntry.objects.filter(held | offered).select_related("contact", "contact__company"))
    mine = sorted((e for e in both if e.status != Status.WAITING), key=lambda e: (e.claimed_at, e.pk))
    offers = sorted((e for e in both if e.status == Status.WAITING), key=lambda e: (e.offer_expires_at, e.pk))
    if calendar is UNREAD and any(e.status == Status.CLAIMED for e in mine):
        calendar = services.calendar()
    for e in mine:
        e.clock = _clock(calendar, now, e.first_touch_due_at) if e.status == Status.CLAIMED else None
    return {"mine": mine, "offers": offers}


def _board(request: HttpRequest, page_number: int = 1) -> dict:
    now = timezone.now()
    calendar = services.calendar()
    waiting = (
        QueueEntry.objects.filter(status=Status.WAITING)
        .select_related("contact", "contact__company", "offered_to")
        .order_by("-score", "entered_at", "pk")
    )
    paginator = Paginator(waiting, PER_PAGE)
    paginator.count = unclaimed_count(request)  # the badge's count: one COUNT per page
    page = paginator.get_page(page_number)
    for e in page:
        e.clock = _clock(calendar, now, e.unclaimed_due_at)
        e.offered_elsewhere = e.offered_to_id not in (None, request.user.pk) and e.offer_expires_at > now
    desk = Desk.get()
    return {
        **_mine(request, now, calendar),
        "page": page,
        "waiting_count": page.paginator.count,
        "can_work": bool(roles_of(request.user) & {SALES, ADMIN}),
        "round_robin": desk.mode == Desk.Mode.ROUND_ROBIN,
        "available": Rep.objects.filter(user=request.user, available=True).exists(),
        **CHOICES,
    }


@role_required(SALES, MARKETING, ADMIN)
def queue(request: HttpRequest) -> HttpResponse:
    if request.htmx and request.GET.get("part") == "badge":
        return render(request, "handoff/badge.html", badge(request))
    form = PageForm(request.GET)
    page_number = form.cleaned_data["page"] if form.is_valid() else 1
    if form.is_valid() and form.cleaned_data["tab"] == "closed":
        closed = (
            QueueEntry.objects.filter(owner=request.user, status__in=CLOSED)
            .select_related("contact", "contact__company")
            .order_by("-closed_at", "-pk")
        )
        page = Paginator(closed, PER_PAGE).get_page(page_number)
        return render(request, "handoff/closed.html", {"page": page})
    template = "handoff/queue.html#board" if request.htmx else "handoff/queue.html"
    return render(request, template, _board(request, page_number))


def _answer(request: HttpRequest, action: str, error: str, gone: list[int]) -> HttpResponse:
    """What an action changed: "My leads" (not after a refused claim, most clicks of a rush: it did not
    change), the counts, the message, and the rows that left the waiting list."""
    if not request.htmx:
        (messages.error if error else messages.success)(request, error or DONE[action])
        return redirect("queue")
    now = timezone.now()
    context = {
        **({"same": True} if error and action == "claim" else _mine(request, now)),
        "waiting_count": unclaimed_count(request),
        "error": error,
        "done": "" if error else DONE[action],
        "gone": gone,
        "can_work": True,
        **CHOICES,
    }
    response = render(request, "handoff/changed.html", context)
    response["HX-Trigger"] = "queue-changed"
    return response


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
    gone = [entry_id] if action == "claim" else []
    if action == "claim" and error:
        gone = list(QueueEntry.objects.filter(pk=entry_id).exclude(status=Status.WAITING).values_list("pk", flat=True))
    return _answer(request, action, error, gone)


@require_POST
@role_required(SALES, ADMIN)
def claim_next(request: HttpRequest) -> HttpResponse:
    try:
        entry, error = services.claim_next(rep=request.user), ""
    except services.HandoffRefused as e:
        entry, error = None, str(e)
    return _answer(request, "next", error, [entry.pk] if entry else [])


@require_POST
@role_required(SALES, ADMIN)
def availability(request: HttpRequest) -> HttpResponse:
    available = request.POST.get("available") == "on"
    services.set_available(rep=request.user, available=available)
    if request.htmx:
        return render(request, "handoff/queue.html#availability", {"available": available, "round_robin": True})
    messages.success(request, "You are available for new leads." if available else "You are away: no new offers.")
    return redirect("queue")
