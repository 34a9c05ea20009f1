"""/reports/: the closed loop as charts with their numbers, each number a link to its contacts, each table a CSV.

Marketing and admins see every report; sales sees its own speed-to-lead row beside the team's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from crm import csv_export
from crm.models import Stage
from crm.roles import ADMIN, MARKETING, SALES, role_required, roles_of
from front import charts, reports
from front.report_query import ReportQuery, start_of
from front.reports import Scope
from scoring import services as scoring

TABLES = ("funnel", "channels", "weekly", "rejections", "speed", "scores")
RESEARCH = (
    "The research line: contact odds fall steeply after the first 5 minutes; a lead reached within 5 minutes is"
    " many times likelier to convert than one reached after 30."
)


def leads_link(scope: Scope, **params) -> str:
    """The leads list narrowed to exactly the contacts a number counts."""
    values = {"since": scope.start.isoformat(), "until": scope.end.isoformat(), "window": scope.window_days}
    if scope.channel:
        values["channel"] = scope.channel
    return reverse("contact_list") + "?" + urlencode(values | {k: v for k, v in params.items() if v not in ("", None)})


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"


def _everything(scope: Scope, mode: str, compare: bool) -> dict:
    funnel = reports.funnel(scope, mode=mode, compare=compare)
    for stage in funnel:
        stage.link = leads_link(scope, report="funnel", mode=mode, reached=stage.stage)
    channels = reports.by_channel(scope)
    for row in channels:
        row.links = {
            stage: leads_link(replace(scope, channel=row.channel), report="funnel", mode="cohort", reached=stage)
            for stage in reports.FUNNEL
        }
    weeks = reports.weekly(scope)
    for week in weeks:
        bounds = Scope(
            start=max(scope.start, start_of(week.week)),
            end=min(scope.end, start_of(week.week) + timedelta(days=7)),
            channel=scope.channel,
        )
        week.links = {
            "mqls": leads_link(bounds, report="funnel", mode="period", reached=Stage.MQL),
            "sqls": leads_link(bounds, report="funnel", mode="period", reached=Stage.SQL),
            "accepted": leads_link(bounds, report="funnel", mode="period", reached=Stage.OPPORTUNITY),
            "rejected": leads_link(bounds, report="rejected"),
        }
    rejections = reports.rejections(scope)
    for row in rejections.by_reason:
        row["link"] = leads_link(scope, report="rejected", reason=row["reason"])
    for row in rejections.by_rep:
        row["link"] = leads_link(scope, report="rejected", reason=row["reason"], rep=row["rep_id"])
    for row in rejections.by_channel:
        row["link"] = leads_link(replace(scope, channel=row["channel"]), report="rejected", reason=row["reason"])
    distribution = reports.score_distribution()
    criteria = scoring.active_criteria()
    return {
        "funnel": funnel,
        "funnel_bars": charts.bars([(s.label, s.count, s.link, _pct(s.rate_from_previous)) for s in funnel]),
        "channels": channels,
        "channel_bars": charts.bars([(r.channel or "(none)", r.leads, r.links["lead"], "") for r in channels[:12]]),
        "weeks": weeks,
        "weekly_chart": charts.rates(
            [f"{w.week:%d %b}" for w in weeks],
            [
                ("MQL → SQL", "s1", [w.mql_to_sql for w in weeks]),
                ("Accepted", "s2", [w.acceptance for w in weeks]),
                ("Recycled", "s3", [w.recycle for w in weeks]),
            ],
        ),
        "rejections": rejections,
        "reason_bars": charts.bars(
            [(r["label"], r["count"], r["link"], _pct(r["share"])) for r in rejections.by_reason]
        ),
        "distribution": distribution,
        "histogram": charts.histogram(
            {stage: dict(bins) for stage, bins in distribution.items()},
            bin_width=reports.SCORE_BIN,
            thresholds=[("MQL", criteria.mql_threshold), ("SQL", criteria.sql_threshold)],
        ),
        "thresholds": criteria,
    }


def _speed(scope: Scope, *, rep_id: int | None) -> dict:
    reps, team = reports.speed(scope, rep_id=rep_id)
    for rep in reps:
        rep.link = leads_link(scope, report="claimed", rep=rep.rep_id)
    return {"reps": reps, "team": team, "within": reports.TOUCHED_WITHIN, "research": RESEARCH}


@require_GET
@role_required(MARKETING, SALES, ADMIN)
def report_page(request: HttpRequest) -> HttpResponse:
    query = ReportQuery(request.GET)
    full = bool(roles_of(request.user) & {MARKETING, ADMIN})
    context = {"query": query, "full": full, "periods": ReportQuery.base_fields["period"].choices}
    if not query.is_valid():
        return render(request, "front/reports.html", context, status=400)
    scope = query.scope()
    context |= {
        "scope": scope,
        "query_string": query.as_query(),
        "speed": _speed(scope, rep_id=None if full else request.user.pk),
    }
    if full:
        context |= _everything(scope, query.cleaned_data["mode"], query.cleaned_data["compare"])
    return render(request, "front/reports.html", context)


@require_GET
@role_required(MARKETING, SALES, ADMIN)
def report_csv(request: HttpRequest, table: str) -> HttpResponse:
    """One report's table as CSV, for the same query as the page."""
    full = bool(roles_of(request.user) & {MARKETING, ADMIN})
    query = ReportQuery(request.GET)
    if table not in TABLES or (not full and table != "speed"):
        return HttpResponse("There is no such report for you.", status=404, content_type="text/plain")
    if not query.is_valid():
        return HttpResponse("Those report filters are not valid.", status=400, content_type="text/plain")
    rows = _table(table, query, rep_id=None if full else request.user.pk)
    response = StreamingHttpResponse(csv_export.rows(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="baton-{table}.csv"'
    return response


def _table(name: str, query: ReportQuery, *, rep_id: int | None) -> list[list]:
    scope, mode = query.scope(), query.cleaned_data["mode"]
    if name == "funnel":
        rows = [["stage", "contacts", "rate_from_previous", "rate_overall", "median_hours_in_stage", "previous_period"]]
        return rows + [
            [s.stage, s.count, s.rate_from_previous, s.rate_overall, s.median_hours_in_stage, s.previous_count]
            for s in reports.funnel(scope, mode=mode, compare=query.cleaned_data["compare"])
        ]
    if name == "channels":
        rows = [["channel", "leads", "mqls", "sqls", "accepted", "won", "lead_to_mql", "mql_to_sql", "sql_to_accepted"]]
        return rows + [
            [r.channel, r.leads, r.mqls, r.sqls, r.accepted, r.won, *list(r.rates.values())[:3]]
            for r in reports.by_channel(scope)
        ]
    if name == "weekly":
        rows = [["week", "mqls", "sqls", "accepted", "rejected", "mql_to_sql", "acceptance", "recycle"]]
        return rows + [
            [w.week, w.mqls, w.sqls, w.accepted, w.rejected, w.mql_to_sql, w.acceptance, w.recycle]
            for w in reports.weekly(scope)
        ]
    if name == "rejections":
        found = reports.rejections(scope)
        rows = [["reason", "rep", "channel", "rejections", "share"]]
        rows += [[r["reason"], "", "", r["count"], r["share"]] for r in found.by_reason]
        rows += [[r["reason"], r["rep"], "", r["count"], ""] for r in found.by_rep]
        return rows + [[r["reason"], "", r["channel"], r["count"], ""] for r in found.by_channel]
    if name == "speed":
        reps, team = reports.speed(scope, rep_id=rep_id)
        header = list(team.as_json())
        return [header] + [list(r.as_json().values()) for r in [*reps, team]]
    rows = [["stage", "score_from", "score_to", "contacts"]]
    return rows + [
        [stage, low, low + reports.SCORE_BIN - 1, n]
        for stage, bins in reports.score_distribution().items()
        for low, n in bins
    ]
