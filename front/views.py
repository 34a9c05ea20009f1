"""The pages people work in: home, the leads list, the lead page and handing leads to sales."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from crm import csv_export, lifecycle, profiles
from crm.lifecycle import Actor
from crm.models import Contact, Stage
from crm.roles import ADMIN, MARKETING, SALES, primary_role, role_required, roles_of
from front import lead_page, leadlist
from front.forms import HandOverForm, ReopenForm, TimelineQuery
from handoff import services as handoff
from leads.forms import requested_forms
from scoring import adjustments
from scoring import services as scoring

HOME_OF_ROLE = {ADMIN: "contact_list", MARKETING: "contact_list", SALES: "queue"}
EDITORS = {MARKETING, ADMIN}


def home(request: HttpRequest) -> HttpResponse:
    """Send each user to the page their role starts from."""
    role = primary_role(request.user)
    if role is None:
        return render(request, "front/no_role.html", status=403)
    return redirect(HOME_OF_ROLE[role])


@role_required(MARKETING, SALES, ADMIN)
def contact_list(request: HttpRequest) -> HttpResponse:
    """The leads list: the page, or (over htmx) just its table, for the filters in the URL."""
    form = leadlist.LeadFilters(request.GET)
    valid = form.is_valid()
    found = leadlist.page(form.cleaned_data, user=request.user) if valid else leadlist.Page([], None)
    template = "front/contact_list.html#table" if request.htmx else "front/contact_list.html"
    context = {
        "form": form,
        "found": found,
        "channels": leadlist.channels(),
        "owners": leadlist.owners(),
        "can_hand_over": bool(roles_of(request.user) & EDITORS),
    }
    return render(request, template, context)


@require_GET
@role_required(MARKETING, ADMIN)
def contact_export(request: HttpRequest) -> HttpResponse:
    """Exactly the contacts the list's filters show (every page of them), as streamed CSV."""
    form = leadlist.LeadFilters(request.GET)
    if not form.is_valid():
        return HttpResponse("Those filters are not valid; fix them on the leads list first.", status=400)
    return csv_export.response(leadlist.exported(form.cleaned_data, request.user), filename="leads.csv")


def _contact(contact_id: int) -> Contact:
    return get_object_or_404(Contact.objects.scored().select_related("company", "owner"), pk=contact_id)


@require_GET
@role_required(MARKETING, SALES, ADMIN)
def contact_detail(request: HttpRequest, contact_id: int) -> HttpResponse:
    """The lead page; over htmx, ``?part=timeline`` is one page of its timeline and ``?edit=profile`` the
    profile form (which, without htmx, opens inside the whole page)."""
    contact = _contact(contact_id)
    query = TimelineQuery(request.GET)
    before = query.cleaned_data["before"] if query.is_valid() else None
    if request.htmx and request.GET.get("part") == "timeline":
        events = lead_page.timeline(contact, before=before)
        return render(request, "front/contact_detail.html#timeline", {"contact": contact, "events": events})
    can_edit = bool(roles_of(request.user) & EDITORS)
    profile_form = (
        lead_page.ProfileForm(instance=contact) if can_edit and request.GET.get("edit") == "profile" else None
    )
    if request.htmx and profile_form:
        return render(request, "front/contact_detail.html#profile", {"contact": contact, "profile_form": profile_form})
    return render(
        request,
        "front/contact_detail.html",
        lead_page.context(contact, user=request.user, profile_form=profile_form, before=before),
    )


@require_POST
@role_required(MARKETING, ADMIN)
def contact_profile(request: HttpRequest, contact_id: int) -> HttpResponse:
    """Save the profile; the contact is rescored at once, so the answer shows its new score."""
    contact = _contact(contact_id)
    form = lead_page.ProfileForm(request.POST, instance=contact)
    if not form.is_valid():
        if request.htmx:
            return render(request, "front/contact_detail.html#profile", {"contact": contact, "profile_form": form})
        context = lead_page.context(contact, user=request.user, profile_form=form)
        return render(request, "front/contact_detail.html", context, status=400)
    profiles.update(contact_id=contact.pk, fields=form.cleaned_data, nudge=False)  # rescored here, not twice
    scoring.rescore_stale(contact_ids=[contact.pk])
    if not request.htmx:
        messages.success(request, "Profile saved.")
        return redirect("contact_detail", contact.pk)
    contact = _contact(contact_id)
    return render(request, "front/profile_saved.html", lead_page.context(contact, user=request.user))


@require_POST
@role_required(MARKETING, SALES, ADMIN)
def contact_note(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _contact(contact_id)
    form = lead_page.NoteForm(request.POST)
    if form.is_valid():
        contact.notes.create(author=request.user, body=form.cleaned_data["body"])
        if not request.htmx:
            return redirect("contact_detail", contact.pk)
        form = lead_page.NoteForm()
    context = {"contact": contact, "notes": lead_page.notes(contact), "note_form": form}
    if request.htmx:
        return render(request, "front/contact_detail.html#notes", context)
    context = lead_page.context(contact, user=request.user, note_form=form)
    return render(request, "front/contact_detail.html", context, status=400)


def _hand_over(request: HttpRequest, form: HandOverForm) -> str:
    """Do what a valid hand-over form asks; returns what to tell the marketer. Raises HandoffRefused."""
    ids, note = form.cleaned_data["ids"], form.cleaned_data["note"]
    if form.cleaned_data["action"] == "send":
        done = handoff.send_to_sales(
            contact_ids=ids,
            marketer=request.user,
            note=note,
            sla=scoring.current_sla(),
            requested=requested_forms(contact_ids=ids, now=timezone.now()),
        )
        verb = "Sent {} lead(s) to sales."
    else:
        done = handoff.disqualify(contact_ids=ids, marketer=request.user, reason=note)
        verb = "Disqualified {} lead(s)."
    return verb.format(done) + (" Others were not leads or MQLs." if done < len(ids) else "")


@require_POST
@role_required(MARKETING, ADMIN)
def hand_over(request: HttpRequest) -> HttpResponse:
    """The leads list's bulk actions: send the selected leads to sales with a note, or disqualify them."""
    form = HandOverForm(request.POST, host=request.get_host(), secure=request.is_secure())
    message, error = "", ""
    if form.is_valid():
        try:
            message = _hand_over(request, form)
        except handoff.HandoffRefused as e:
            error = str(e)
    else:
        error = form.message
    if not request.htmx:
        (messages.error if error else messages.success)(request, error or message)
        back = form.cleaned_data.get("back")
        return HttpResponseRedirect(back) if back else redirect("contact_list")
    response = render(request, "front/handed_over.html", {"message": message, "error": error})
    if not error:
        response["HX-Trigger"] = "leads-changed"
    return response


def _back_to_the_lead(request: HttpRequest, contact_id: int, message: str, error: str = "") -> HttpResponse:
    """After an action on the lead page, show the page as the action left it (with what happened)."""
    (messages.error if error else messages.success)(request, error or message)
    return HttpResponseClientRefresh() if request.htmx else redirect("contact_detail", contact_id)


@require_POST
@role_required(MARKETING, ADMIN)
def contact_hand_over(request: HttpRequest, contact_id: int) -> HttpResponse:
    """Send this lead to sales, or disqualify it, from its own page."""
    contact = _contact(contact_id)
    data = request.POST.copy()
    data.setlist("ids", [str(contact.pk)])
    form = HandOverForm(data, host=request.get_host(), secure=request.is_secure())
    if not form.is_valid():
        return _back_to_the_lead(request, contact.pk, "", form.message)
    try:
        return _back_to_the_lead(request, contact.pk, _hand_over(request, form))
    except handoff.HandoffRefused as e:
        return _back_to_the_lead(request, contact.pk, "", str(e))


@require_POST
@role_required(ADMIN)
def contact_reopen(request: HttpRequest, contact_id: int) -> HttpResponse:
    """Admins re-open a disqualified contact: a recorded move back to lead, rescored at once."""
    contact = _contact(contact_id)
    form = ReopenForm(request.POST)
    if not form.is_valid():
        return _back_to_the_lead(request, contact.pk, "", form.errors["reason"][0])
    try:
        lifecycle.move(
            contact_id=contact.pk,
            to=Stage.LEAD,
            by=Actor.of(request.user),
            reason=f"Re-opened: {form.cleaned_data['reason'].strip()}",
            expect=Stage.DISQUALIFIED,
        )
    except lifecycle.StageMoveRefused as e:
        return _back_to_the_lead(request, contact.pk, "", str(e))
    scoring.rescore_stale(contact_ids=[contact.pk])
    return _back_to_the_lead(request, contact.pk, "Re-opened: the contact is a lead again.")


@require_POST
@role_required(MARKETING, ADMIN)
def contact_adjust(request: HttpRequest, contact_id: int) -> HttpResponse:
    """A manual score adjustment, rescored at once; an invalid one shows the page again with its errors."""
    contact = _contact(contact_id)
    form = lead_page.AdjustForm(request.POST)
    if not form.is_valid():
        context = lead_page.context(contact, user=request.user, adjust_form=form)
        return render(request, "front/contact_detail.html", context, status=400)
    adjustments.adjust(
        contact_id=contact.pk,
        points=form.cleaned_data["points"],
        reason=form.cleaned_data["reason"].strip(),
        expires_at=form.expires_at(),
        by=request.user,
    )
    return _back_to_the_lead(request, contact.pk, f"Score adjusted by {form.cleaned_data['points']:+d}.")


@require_POST
@role_required(MARKETING, ADMIN)
def contact_stage(request: HttpRequest, contact_id: int) -> HttpResponse:
    """Marketing moves a lead to MQL or an MQL back to lead, for a reason; scoring then leaves it there."""
    contact = _contact(contact_id)
    form = lead_page.StageForm(request.POST)
    if not form.is_valid():
        return _back_to_the_lead(request, contact.pk, "", "Say why you move it (the reason is kept).")
    to = Stage(form.cleaned_data["to"])
    try:
        lifecycle.move(
            contact_id=contact.pk,
            to=to,
            by=Actor.of(request.user),
            reason=f"Moved by hand: {form.cleaned_data['reason'].strip()}",
            expect=Stage.MQL if to == Stage.LEAD else Stage.LEAD,
            hold=True,
        )
    except lifecycle.StageMoveRefused as e:
        return _back_to_the_lead(request, contact.pk, "", str(e))
    return _back_to_the_lead(request, contact.pk, f"Moved to {to.label}.")
