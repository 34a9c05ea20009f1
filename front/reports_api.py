"""The reports over the read API (API.md "Reports"): the numbers the reports page shows, for `read` keys."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from front import reports
from front.report_query import ReportQuery
from leads import errors
from leads.api import ERRORS, read_key

router = Router(tags=["reports"], auth=read_key)
QUERY_DOC = {
    "parameters": [
        {"in": "query", "name": "from", "schema": {"type": "string"}, "description": "YYYY-MM-DD or ISO 8601 time"},
        {"in": "query", "name": "to", "schema": {"type": "string"}, "description": "YYYY-MM-DD (whole day) or time"},
        {"in": "query", "name": "channel", "schema": {"type": "string"}, "description": "First-touch channel"},
    ]
}


def _query(request: HttpRequest) -> ReportQuery:
    query = ReportQuery(request.GET)
    if not query.is_valid():
        raise errors.form_invalid(query)
    return query


def _period(query: ReportQuery) -> dict:
    scope = query.scope()
    return {"from": scope.start.isoformat(), "to": scope.end.isoformat(), "channel": scope.channel or None}


@router.get(
    "/funnel",
    response={200: dict, **ERRORS},
    openapi_extra={
        "parameters": [
            *QUERY_DOC["parameters"],
            {"in": "query", "name": "mode", "schema": {"type": "string", "enum": ["cohort", "period"]}},
            {"in": "query", "name": "window", "schema": {"type": "integer"}, "description": "Cohort window, days (90)"},
        ]
    },
)
def funnel(request: HttpRequest) -> HttpResponse:
    """Lead → MQL → SQL → opportunity → customer: *cohort* (contacts created in the period, the furthest stage each
    reached within the window) or *period* (contacts entering each stage in the period)."""
    query = _query(request)
    stages = reports.funnel(query.scope(), mode=query.cleaned_data["mode"])
    return JsonResponse(
        {
            **_period(query),
            "mode": query.cleaned_data["mode"],
            "stages": [
                {
                    "stage": s.stage,
                    "count": s.count,
                    "rate_from_previous": s.rate_from_previous,
                    "rate_overall": s.rate_overall,
                    "median_hours_in_stage": s.median_hours_in_stage,
                }
                for s in stages
            ],
        }
    )


@router.get("/speed", response={200: dict, **ERRORS}, openapi_extra=QUERY_DOC)
def speed(request: HttpRequest) -> HttpResponse:
    """Speed to lead per rep, for leads claimed in the period: minutes from entering the queue to claim and to first
    touch (median, p90), the share touched within 5 min / 30 min / 1 h / 24 h, SLA breaches and returns."""
    query = _query(request)
    reps, team = reports.speed(query.scope())
    return JsonResponse({**_period(query), "reps": [r.as_json() for r in reps], "team": team.as_json()})


@router.get("/rejections", response={200: dict, **ERRORS}, openapi_extra=QUERY_DOC)
def rejections(request: HttpRequest) -> HttpResponse:
    """Leads sales rejected in the period: per reason (count, share), per rep, per channel, and the words of 'other'."""
    query = _query(request)
    found = reports.rejections(query.scope())
    return JsonResponse(
        {
            **_period(query),
            "total": found.total,
            "reasons": found.by_reason,
            "by_rep": found.by_rep,
            "by_channel": found.by_channel,
            "other": [o | {"at": o["at"].isoformat()} for o in found.other_texts],
        }
    )
