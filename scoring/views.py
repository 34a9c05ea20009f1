"""The criteria pages (admins): edit the draft, preview, publish with progress, history."""

from __future__ import annotations

import json
import re

from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from crm.roles import ADMIN, role_required
from scoring import backtest, criteria, criteria_json, engine, evidence, previews, suggestions
from scoring.forms import (
    EVENT_TYPES,
    PROPERTY_KEYS,
    BacktestForm,
    BehaviourRules,
    EvidenceForm,
    FitRules,
    SettingsForm,
)
from scoring.models import CriteriaVersion, RescoreRun
from scoring.services import criteria_of


def _context(draft: CriteriaVersion, *, days: int = 180, **extra) -> dict:
    return {
        "evidence": extra.pop("evidence", None) or evidence.evidence(criteria_of(draft), days=days),
        "evidence_form": extra.pop("evidence_form", None) or EvidenceForm(initial={"days": days}),
        "backtest": draft.backtests.order_by("-pk").first(),
        "preview_run": (run := previews.latest(draft)),
        "preview": previews.outcome(run),
        "backtest_form": extra.pop("backtest_form", None) or BacktestForm(),
        "draft": draft,
        "settings_form": extra.pop("settings_form", None) or SettingsForm(instance=draft),
        "behaviour": extra.pop("behaviour", None) or BehaviourRules(instance=draft, prefix="b"),
        "fit": extra.pop("fit", None) or FitRules(instance=draft, prefix="f"),
        "problems": criteria.problems(draft),
        "versions": _history(),
        "run": RescoreRun.objects.order_by("-pk").first(),
        "event_types": EVENT_TYPES,
        "property_keys": PROPERTY_KEYS,
        "fit_fields": [*engine.FIT_FIELDS, "profile."],
        **extra,
    }


def _history() -> list[tuple[CriteriaVersion, list[str]]]:
    """Published versions, newest first, each with what it changed against the one before."""
    versions = list(
        CriteriaVersion.objects.exclude(status="draft")
        .select_related("published_by")
        .prefetch_related("behaviour_rules", "fit_rules")
        .order_by("number")
    )
    pairs = [(v, criteria.changes(v, versions[i - 1] if i else None)) for i, v in enumerate(versions)]
    return pairs[::-1]


@role_required(ADMIN)
def criteria_page(request: HttpRequest) -> HttpResponse:
    if request.htmx and request.GET.get("part") == "backtest":
        test = criteria.draft().backtests.order_by("-pk").first()
        return render(request, "scoring/criteria.html#backtest", {"backtest": test})
    if request.htmx and request.GET.get("part") == "preview":
        run = previews.latest(criteria.draft())
        return render(request, "scoring/criteria.html#preview", {"preview_run": run, "preview": previews.outcome(run)})
    if request.htmx and request.GET.get("part") == "progress":
        return render(request, "scoring/criteria.html#progress", {"run": RescoreRun.objects.order_by("-pk").first()})
    draft = criteria.draft()
    if request.method != "POST":
        window = EvidenceForm(request.GET or None)
        days = window.cleaned_data["days"] if window.is_valid() else 180
        return render(request, "scoring/criteria.html", _context(draft, days=days, evidence_form=window))
    action = request.POST.get("action")
    if action == "suggest":
        return _suggest(request, draft)
    if action == "backtest":
        form = BacktestForm(request.POST)
        if not form.is_valid():
            return render(request, "scoring/criteria.html", _context(draft, backtest_form=form), status=400)
        try:
            backtest.start(version=draft, days=form.cleaned_data["days"])
        except backtest.BacktestRefused as e:
            form.add_error("days", str(e))
            return render(request, "scoring/criteria.html", _context(draft, backtest_form=form), status=400)
        return render(request, "scoring/criteria.html", _context(draft))
    if action == "import_json":
        return _import_json(request)
    if action == "republish":
        number = request.POST.get("version", "")
        if not re.fullmatch(r"[0-9]{1,9}", number):
            raise Http404("No such version")
        old = get_object_or_404(CriteriaVersion, number=int(number), status="retired")
        return _publish(request, lambda: criteria.republish(version=old, by=request.user))
    settings_form = SettingsForm(request.POST, instance=draft)
    behaviour = BehaviourRules(request.POST, instance=draft, prefix="b")
    fit = FitRules(request.POST, instance=draft, prefix="f")
    if not (settings_form.is_valid() and behaviour.is_valid() and fit.is_valid()):
        return render(
            request,
            "scoring/criteria.html",
            _context(draft, settings_form=settings_form, behaviour=behaviour, fit=fit),
            status=400,
        )
    with transaction.atomic():
        settings_form.save()
        behaviour.save()
        fit.save()
        previews.forget(draft)
        if action == "preview":
            previews.start(version=draft)
    draft.refresh_from_db()
    if action == "publish":
        return _publish(request, lambda: criteria.publish(version=draft, by=request.user))
    return render(request, "scoring/criteria.html", _context(draft, saved=True))


def _suggest(request: HttpRequest, draft: CriteriaVersion) -> HttpResponse:
    """Suggested points from the evidence of the last 180 days, written into the draft (never published)."""
    found = evidence.evidence(criteria_of(draft))
    try:
        suggested = suggestions.suggest(found)
    except suggestions.NotEnoughHandoffs as e:
        return render(request, "scoring/criteria.html", _context(draft, evidence=found, suggest_error=str(e)))
    suggestions.apply(draft, suggested)
    draft.refresh_from_db()
    return render(request, "scoring/criteria.html", _context(draft, suggestions=suggested))


def _publish(request: HttpRequest, do) -> HttpResponse:
    try:
        do()
        error = ""
    except criteria.CriteriaRefused as e:
        error = str(e)
    return render(
        request, "scoring/criteria.html", _context(criteria.draft(), publish_error=error), status=400 if error else 200
    )


JSON_LIMIT = 1024 * 1024


def _import_json(request: HttpRequest) -> HttpResponse:
    """The draft replaced by pasted JSON, with the API's checks and their JSON paths."""
    text = request.POST.get("json", "")
    try:
        body = json.loads(text) if len(text) <= JSON_LIMIT else None
        parsed, problems = criteria_json.parse(body)
    except ValueError as e:
        parsed, problems = None, [{"field": None, "message": f"That is not JSON: {e}."}]
    if problems:
        context = _context(criteria.draft(), json_errors=problems, json_text=text[:JSON_LIMIT])
        return render(request, "scoring/criteria.html", context, status=400)
    return render(request, "scoring/criteria.html", _context(criteria_json.replace_draft(parsed), json_saved=True))


@require_GET
@role_required(ADMIN)
def criteria_export(request: HttpRequest, number: int) -> HttpResponse:
    """A version as JSON, to keep in version control (and import into a draft later)."""
    version = get_object_or_404(CriteriaVersion, number=number)
    response = JsonResponse(criteria_json.as_json(version), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="criteria-v{version.number}.json"'
    return response
