from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from crm import health, leadlist
from crm.models import Contact
from crm.roles import ADMIN, MARKETING, SALES, primary_role, role_required, roles_of

HOME_OF_ROLE = {ADMIN: "contact_list", MARKETING: "contact_list", SALES: "queue"}


def home(request: HttpRequest) -> HttpResponse:
    """Send each user to the page their role starts from."""
    role = primary_role(request.user)
    if role is None:
        return render(request, "crm/no_role.html", status=403)
    return redirect(HOME_OF_ROLE[role])


@role_required(MARKETING, SALES, ADMIN)
def contact_list(request: HttpRequest) -> HttpResponse:
    """The leads list: the page, or (over htmx) just its table, for the filters in the URL."""
    form = leadlist.LeadFilters(request.GET)
    found = leadlist.page(form.cleaned_data, user=request.user) if form.is_valid() else leadlist.Page([], None)
    template = "crm/contact_list.html#table" if request.htmx else "crm/contact_list.html"
    context = {
        "form": form,
        "found": found,
        "owners": leadlist.owners(),
        "can_hand_over": bool(roles_of(request.user) & {MARKETING, ADMIN}),
    }
    return render(request, template, context)


@role_required(MARKETING, SALES, ADMIN)
def contact_detail(request: HttpRequest, contact_id: int) -> HttpResponse:
    """The lead page: profile, score and why, stage history with its reasons, handoff status."""
    contact = get_object_or_404(Contact.objects.select_related("company", "owner"), pk=contact_id)
    history = contact.stage_changes.select_related("by_user").order_by("-at", "-id")
    entry = contact.queue_entries.select_related("owner").order_by("-entered_at").first()
    return render(request, "crm/contact_detail.html", {"contact": contact, "history": history, "entry": entry})


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    result = health.report()
    return JsonResponse(result, status=200 if result["status"] == "ok" else 503)
