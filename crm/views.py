from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from crm import health
from crm.models import Contact, Stage
from crm.roles import ADMIN, MARKETING, SALES, primary_role, role_required

HOME_OF_ROLE = {ADMIN: "contact_list", MARKETING: "contact_list", SALES: "queue"}


def home(request: HttpRequest) -> HttpResponse:
    """Send each user to the page their role starts from."""
    role = primary_role(request.user)
    if role is None:
        return render(request, "crm/no_role.html", status=403)
    return redirect(HOME_OF_ROLE[role])


@role_required(MARKETING, SALES, ADMIN)
def contact_list(request: HttpRequest) -> HttpResponse:
    contacts = Contact.objects.select_related("company", "owner").order_by("-score", "-id")
    stage = request.GET.get("stage", "")
    if stage in Stage.values:
        contacts = contacts.filter(stage=stage)
    else:
        stage = ""
    page = Paginator(contacts, 50).get_page(request.GET.get("page"))
    template = "crm/contact_list.html#table" if request.htmx else "crm/contact_list.html"
    return render(request, template, {"page": page, "stage": stage, "stages": Stage.choices})


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
