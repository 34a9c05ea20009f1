from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from crm import health, lead_page, leadlist
from crm.models import Contact, Note, Stage
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
    """The lead page and its fragments: profile (marketing edits it inline), notes, timeline pages."""
    contact = get_object_or_404(Contact.objects.select_related("company", "owner"), pk=contact_id)
    roles = roles_of(request.user)
    can_edit = bool(roles & {MARKETING, ADMIN})
    profile_form = note_form = None
    if request.method == "POST":
        if request.POST.get("form") == "profile":
            if not can_edit:
                raise PermissionDenied
            profile_form = lead_page.ProfileForm(request.POST, instance=contact)
            if profile_form.is_valid():
                profile_form.save()
                profile_form = None
            return render(
                request,
                "crm/contact_detail.html#profile",
                {"contact": contact, "can_edit": can_edit, "profile_form": profile_form},
            )
        note_form = lead_page.NoteForm(request.POST)
        if note_form.is_valid():
            Note.objects.create(contact=contact, author=request.user, body=note_form.cleaned_data["body"])
            note_form = None
        notes = contact.notes.select_related("author").order_by("-created_at")[:50]
        return render(
            request,
            "crm/contact_detail.html#notes",
            {"contact": contact, "notes": notes, "note_form": note_form or lead_page.NoteForm()},
        )
    before = request.GET.get("before", "")
    events = lead_page.timeline(contact, before=int(before) if before.isdigit() else None)
    if request.htmx and request.GET.get("part") == "timeline":
        return render(request, "crm/contact_detail.html#timeline", {"contact": contact, "events": events})
    if request.htmx and request.GET.get("edit") == "profile" and can_edit:
        return render(
            request,
            "crm/contact_detail.html#profile",
            {"contact": contact, "can_edit": True, "profile_form": lead_page.ProfileForm(instance=contact)},
        )
    history_points = list(contact.score_history.order_by("at").values_list("at", "score")[:500])
    return render(
        request,
        "crm/contact_detail.html",
        {
            "contact": contact,
            "can_edit": can_edit,
            "can_hand_over": can_edit and contact.stage in (Stage.LEAD, Stage.MQL),
            "history": contact.stage_changes.order_by("-at", "-id"),
            "entry": contact.queue_entries.select_related("owner").order_by("-entered_at").first(),
            "events": events,
            "chart": lead_page.chart(history_points),
            "notes": contact.notes.select_related("author").order_by("-created_at")[:50],
            "note_form": lead_page.NoteForm(),
        },
    )


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    result = health.report()
    return JsonResponse(result, status=200 if result["status"] == "ok" else 503)
