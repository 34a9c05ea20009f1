"""Hosted forms: any website's HTML form can post to /f/<slug> with a site key."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from leads import auth, errors, ingest
from leads.models import Form
from leads.parsing import validate
from leads.schemas import FORM_SLUG, PROFILE_FIELDS, WHOLE_NUMBER, EventIn

FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _error(request: HttpRequest, error: errors.ApiError) -> HttpResponse:
    if "application/json" in request.headers.get("Accept", ""):
        return error.response()
    return render(request, "leads/form_error.html", {"error": error}, status=error.status)


def _submission(request: HttpRequest, slug: str) -> EventIn:
    """The form_submit event a hosted form's fields describe. Raises ApiError naming the wrong field."""
    if request.content_type not in FORM_MEDIA_TYPES:
        raise errors.ApiError(415, "unsupported_media_type", "Post the form as form fields (an HTML form).")
    fields = {k: v.strip() for k, v in request.POST.items() if not k.startswith("_")}
    if not fields.get("email"):
        raise errors.invalid([{"index": None, "field": "email", "message": "is required"}], "Please enter your email.")
    contact = {k: fields[k] for k in PROFILE_FIELDS if fields.get(k)}
    if "company_size" in contact:
        if not WHOLE_NUMBER.fullmatch(contact["company_size"]):
            raise errors.invalid(
                [{"index": None, "field": "company_size", "message": "must be a whole number"}],
                "Company size must be a whole number.",
            )
        contact["company_size"] = int(contact["company_size"])
    data = {
        "id": request.POST.get("_submission") or f"form-{uuid.uuid4()}",
        "type": "form_submit",
        "email": fields.pop("email"),
        "properties": {"form": slug, **fields},
        "contact": contact,
    }
    if request.POST.get("_visitor"):
        data["visitor_id"] = request.POST["_visitor"]
    event, details = validate(EventIn, data)
    if event is None:
        for detail in details:
            detail["field"] = {"id": "_submission", "visitor_id": "_visitor"}.get(detail["field"], detail["field"])
            detail["field"] = (detail["field"] or "").removeprefix("contact.").removeprefix("properties.")
        raise errors.invalid(details, f"Please check the field '{details[0]['field']}': {details[0]['message']}.")
    return event


@csrf_exempt
@login_not_required
@require_http_methods(["GET", "POST"])
def hosted_form(request: HttpRequest, slug: str) -> HttpResponse:
    """POST: a submission from any allowed site (or from the page GET gives). GET ``?key=pk_…``: a page of our
    own with the form, to link to from an email or an ad."""
    if not FORM_SLUG.match(slug):
        raise Http404("No such form")
    if request.method == "GET":
        return _form_page(request, slug)
    try:
        key = auth.site_key(request, request.POST.get("_key"), also=_own_origin(request))
        event = _submission(request, slug)
        redirect_to = request.POST.get("_redirect", "")
        if redirect_to and not _allowed_redirect(key.source, redirect_to):
            raise errors.invalid(
                [{"index": None, "field": "_redirect", "message": "is not on an allowed origin"}],
                "The form's _redirect address is not on this site's allowed origins.",
            )
        ingest.record(source=key.source, events=[event], received_at=timezone.now())
    except errors.ApiError as e:
        return _error(request, e)
    except DatabaseError:
        return _error(request, errors.unavailable())
    thank_you = Form.objects.filter(slug=slug).values_list("thank_you_url", flat=True).first()
    return HttpResponseRedirect(redirect_to or thank_you or reverse("form_thanks", args=[slug]), status=303)


def _own_origin(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def _form_page(request: HttpRequest, slug: str) -> HttpResponse:
    form = Form.objects.filter(slug=slug).first()
    if form is None:
        raise Http404("No such form")
    raw = request.GET.get("key", "").strip()
    if not raw:
        return _error(request, errors.unauthorized("This form's address needs its site key: /f/<form>?key=pk_…."))
    try:
        auth.public_key(raw)  # the page is ours: whoever links to it, its posts come from our own origin
    except errors.ApiError as e:
        return _error(request, e)
    return render(request, "leads/hosted_form.html", {"form": form, "key": raw, "submission": f"form-{uuid.uuid4()}"})


def _allowed_redirect(source, url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and source.allows_origin(f"{parts.scheme}://{parts.netloc}")


@login_not_required
@require_GET
def form_thanks(request: HttpRequest, slug: str) -> HttpResponse:
    form = Form.objects.filter(slug=slug).first()
    return render(request, "leads/form_thanks.html", {"form": form})
