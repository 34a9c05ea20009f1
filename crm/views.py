from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from crm import health
from crm.models import Contact, Stage
from crm.roles import ADMIN, MARKETING, SALES, primary_role, role_required

HOME_OF_ROLE = {ADMIN: "contact_list", MARKETING: "contact_list", SALES: "contact_list"}


def home(request: HttpRequest) -> HttpResponse:
    """Send each user to the page their role starts from."""
    role = primary_role(request.user)
    if role is None:
        return render(request, "crm/no_role.html", status=403)
    target = redirect(HOME_OF_ROLE[role])
    if role == SALES:
        target["Location"] += f"?stage={Stage.SQL}"
    return target


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


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    result = health.report()
    return JsonResponse(result, status=200 if result["status"] == "ok" else 503)
