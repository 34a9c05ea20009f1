"""Criteria as code over the API (API.md "Criteria as code"), for `admin` keys: read versions, replace the draft,
preview it, publish it and follow the rescore."""

from __future__ import annotations

from typing import Annotated

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Path, Router

from leads import auth, errors, parsing
from leads.api import ERRORS
from leads.models import ApiKey
from leads.schemas import ErrorOut
from scoring import criteria, criteria_json
from scoring.models import CriteriaVersion, RescoreRun


def admin_key(request: HttpRequest) -> ApiKey:
    return auth.bearer_key(request, scope=ApiKey.Scope.ADMIN)


router = Router(tags=["criteria"], auth=admin_key)
NUMBER = Annotated[int, Path(ge=0, le=2**31 - 1)]
BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "description": "A version, as GET /criteria/active gives it"}
            }
        },
    }
}


def _versions():
    return CriteriaVersion.objects.select_related("published_by").prefetch_related("behaviour_rules", "fit_rules")


@router.get("/criteria/active", response={200: dict, **ERRORS})
def active(request: HttpRequest) -> HttpResponse:
    """The active version."""
    return JsonResponse(criteria_json.as_json(_versions().get(status=CriteriaVersion.Status.ACTIVE)))


@router.get("/criteria/versions", response={200: dict, **ERRORS})
def versions(request: HttpRequest) -> HttpResponse:
    """Every version, newest first (the draft too, if there is one)."""
    return JsonResponse({"versions": [criteria_json.as_json(v) for v in _versions().order_by("-number")]})


@router.get("/criteria/versions/{number}", response={200: dict, 404: ErrorOut, **ERRORS})
def version(request: HttpRequest, number: NUMBER) -> HttpResponse:
    found = _versions().filter(number=number).first()
    if found is None:
        raise errors.ApiError(404, "not_found", f"There is no version {number}.")
    return JsonResponse(criteria_json.as_json(found))


@router.put("/criteria/draft", response={200: dict, **ERRORS}, openapi_extra=BODY)
def put_draft(request: HttpRequest) -> HttpResponse:
    """Replace the draft with a version's JSON (as GET gives it; `version`, `status` and `published_*` are
    ignored). Every problem is listed with its JSON path; nothing is saved unless there are none."""
    body = parsing.read_body(request, media_types=("application/json",))
    parsed, details = criteria_json.parse(body)
    if details:
        raise errors.invalid(
            details,
            "The draft was not changed: " + "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details[:5]),
        )
    return JsonResponse(criteria_json.as_json(criteria_json.replace_draft(parsed)))


@router.post("/criteria/draft/preview", response={200: dict, **ERRORS})
def preview(request: HttpRequest) -> HttpResponse:
    """What publishing the draft would do: contacts per stage and grade, today and under the draft."""
    draft = criteria.draft()
    result = criteria.preview(draft)
    return JsonResponse(
        {
            "version": draft.number,
            "today": {"stages": dict(result.today_stages), "grades": dict(result.today_grades)},
            "draft": {"stages": dict(result.stages), "grades": dict(result.grades)},
            "moves": [{"from": a, "to": b, "contacts": n} for (a, b), n in sorted(result.moves.items())],
        }
    )


@router.post("/criteria/draft/publish", response={202: dict, 409: ErrorOut, **ERRORS})
def publish(request: HttpRequest) -> HttpResponse:
    """Make the draft the active version and rescore everyone in the background; `409` while a rescore runs."""
    draft = criteria.draft()
    if found := criteria.problems(draft):
        raise errors.invalid([{"index": None, "field": None, "message": m} for m in found], " ".join(found))
    try:
        with transaction.atomic():
            run = criteria.publish(version=draft, by=None)
    except criteria.CriteriaRefused as e:
        raise errors.ApiError(409, "conflict", str(e)) from None
    return JsonResponse({"version": draft.number, "rescore": {"id": run.pk}}, status=202)


@router.get("/rescores/{run_id}", response={200: dict, 404: ErrorOut, **ERRORS})
def rescore(request: HttpRequest, run_id: Annotated[int, Path(ge=0, le=2**63 - 1)]) -> HttpResponse:
    """A full rescore's progress: `running`, `done` or `failed` (with why)."""
    run = RescoreRun.objects.filter(pk=run_id).first()
    if run is None:
        raise errors.ApiError(404, "not_found", f"There is no rescore {run_id}.")
    state = "running" if run.running else "done" if run.finished_at else "failed"
    return JsonResponse(
        {
            "id": run.pk,
            "version": run.version.number,
            "state": state,
            "done": run.done,
            "total": run.total,
            "problem": run.problem or None,
        }
    )
