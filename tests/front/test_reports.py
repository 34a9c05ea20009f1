"""Reports (PRODUCT.md §9, API.md "Reports"): every number computed by hand for a made-up October and compared
with the page, the API and the CSV; the leads behind a number; a closed period that never changes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from crm.models import Contact, Score, Stage, StageChange
from handoff.models import QueueEntry, SlaBreach
from leads.models import ApiKey, Source
from scoring import services as scoring

OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}


def at(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def october(db, rep_sam, rep_ria):
    """Six leads and what became of them (see the module's expected numbers)."""
    people = {}

    def lead(name, created, channel, moves=()):
        contact = Contact.objects.create(email=f"{name}@example.com", first_name=name.title(), channel=channel)
        Contact.objects.filter(pk=contact.pk).update(created_at=created, stage=moves[-1][1] if moves else Stage.LEAD)
        since = created
        for frm, to, when in moves:
            StageChange.objects.create(
                contact=contact, from_stage=frm, to_stage=to, at=when, by_label="t", score=50, since=since
            )
            since = when
        people[name] = contact
        return contact

    def entry(contact, entered, claimed, touched, rep, status, **more):
        return QueueEntry.objects.create(
            contact=contact,
            status=status,
            sent_by="scoring v1",
            score=80,
            entered_at=entered,
            unclaimed_due_at=entered,
            first_touch_minutes=120,
            owner=rep,
            claimed_at=claimed,
            first_touch_at=touched,
            **more,
        )

    a = lead(
        "ann",
        at(10, 2),
        "google",
        [
            ("lead", "mql", at(10, 3)),
            ("mql", "sql", at(10, 4, 9)),
            ("sql", "opportunity", at(10, 5)),
            ("opportunity", "customer", at(10, 20)),
        ],
    )
    entry(a, at(10, 4, 9), at(10, 4, 9, 10), at(10, 4, 9, 14), rep_sam, "won", closed_at=at(10, 20))
    b = lead(
        "bob",
        at(10, 5),
        "google",
        [
            ("lead", "mql", at(10, 6)),
            ("mql", "sql", at(10, 7, 10)),
            ("sql", "lead", at(10, 8)),
        ],
    )
    breached = entry(
        b,
        at(10, 7, 10),
        at(10, 7, 10, 30),
        at(10, 7, 11, 30),
        rep_ria,
        "rejected",
        closed_at=at(10, 8),
        rejection_reason="no_budget",
    )
    SlaBreach.objects.create(entry=breached, kind="first_touch", at=at(10, 7, 12, 30), owner=rep_ria)
    lead("cy", at(10, 10), "LinkedIn", [("lead", "mql", at(10, 12))])
    lead("dee", at(10, 15), "linkedin")
    e = lead(
        "eve",
        at(9, 20),
        "google",
        [
            ("lead", "mql", at(10, 2)),
            ("mql", "sql", at(10, 3, 8)),
            ("sql", "lead", at(10, 4)),
        ],
    )
    entry(
        e,
        at(10, 3, 8),
        at(10, 3, 8, 2),
        at(10, 3, 8, 40),
        rep_sam,
        "rejected",
        closed_at=at(10, 4),
        rejection_reason="other",
        rejection_text="Student project",
    )
    lead("fay", at(10, 25), "google", [("lead", "mql", at(10, 26)), ("mql", "sql", at(11, 10))])
    return people


@pytest.fixture
def api(client, db):
    key = ApiKey.issue(source=Source.objects.create(name="bi"), scope=ApiKey.Scope.READ)[1]
    return lambda path, **q: client.get(f"/api/v1/reports/{path}", q, HTTP_AUTHORIZATION=f"Bearer {key}")


def counts(body):
    return [(s["stage"], s["count"], s["rate_from_previous"]) for s in body["stages"]]


def test_the_cohort_funnel_counts_how_far_the_periods_leads_got(api, october):
    body = api("funnel", **OCTOBER, mode="cohort").json()

    assert counts(body) == [
        ("lead", 5, None),
        ("mql", 4, 0.8),
        ("sql", 3, 0.75),
        ("opportunity", 1, 0.3333),
        ("customer", 1, 1.0),
    ]
    assert body["stages"][4]["rate_overall"] == 0.2


def test_a_cohort_counts_only_what_happened_within_its_window(api, october):
    body = api("funnel", **OCTOBER, mode="cohort", window="10").json()

    assert [s["count"] for s in body["stages"]] == [5, 4, 2, 1, 0]  # fay's sql (day 16), ann's win (day 18) fall out


def test_the_period_funnel_counts_entries_into_each_stage(api, october):
    body = api("funnel", **OCTOBER, mode="period").json()

    assert counts(body) == [
        ("lead", 5, None),
        ("mql", 5, 1.0),
        ("sql", 3, 0.6),
        ("opportunity", 1, 0.3333),
        ("customer", 1, 1.0),
    ]


def test_a_channel_filter_is_case_insensitive(api, october):
    assert [c for _, c, _ in counts(api("funnel", **OCTOBER, channel="GOOGLE").json())] == [3, 3, 3, 1, 1]
    assert [c for _, c, _ in counts(api("funnel", **OCTOBER, channel="linkedin").json())] == [2, 1, 0, 0, 0]


def test_speed_to_lead_per_rep(api, october, rep_sam, rep_ria):
    body = api("speed", **OCTOBER).json()
    reps = {r["rep"]: r for r in body["reps"]}

    sam, ria = reps[rep_sam.get_full_name()], reps[rep_ria.get_full_name()]
    assert (sam["claimed"], sam["median_minutes_to_claim"], sam["median_minutes_to_first_touch"]) == (2, 6.0, 27.0)
    assert (sam["touched_within_5_min"], sam["touched_within_30_min"], sam["touched_within_1_h"]) == (0.0, 0.5, 1.0)
    assert (sam["breaches"], ria["breaches"], ria["returns"]) == (0, 1, 1)
    assert (ria["median_minutes_to_claim"], ria["median_minutes_to_first_touch"]) == (30.0, 90.0)
    assert body["team"]["claimed"] == 3 and body["team"]["breaches"] == 1


def test_rejections_per_reason_rep_and_channel(api, october):
    body = api("rejections", **OCTOBER).json()

    assert body["total"] == 2
    assert {(r["reason"], r["count"], r["share"]) for r in body["reasons"]} == {
        ("no_budget", 1, 0.5),
        ("other", 1, 0.5),
    }
    assert [o["text"] for o in body["other"]] == ["Student project"]
    assert {(r["channel"], r["reason"]) for r in body["by_channel"]} == {("google", "no_budget"), ("google", "other")}


def test_bad_report_queries_are_400_and_need_a_read_key(api, client, october):
    assert api("funnel", **{"from": "2026-13-01"}).status_code == 400
    assert api("funnel", **{"from": "2026-10-31", "to": "2026-10-01"}).status_code == 400
    assert api("funnel", **{"from": "٢٠٢٦-١٠-٠١"}).status_code == 400
    assert api("funnel", mode="sideways").status_code == 400
    assert client.get("/api/v1/reports/funnel").status_code == 401


def test_a_closed_period_does_not_change_when_contacts_are_rescored_or_moved(api, october):
    before = [api(p, **OCTOBER).json() for p in ("funnel", "speed", "rejections")]

    scoring.rescore(contact_ids=list(Contact.objects.values_list("id", flat=True)))
    Contact.objects.update(stage=Stage.MQL)
    Score.objects.update(score=99)
    Contact.objects.create(email="late@example.com", channel="google")

    assert [api(p, **OCTOBER).json() for p in ("funnel", "speed", "rejections")] == before


def test_the_page_shows_the_same_numbers_and_each_links_to_exactly_its_contacts(client, marketer_mia, october):
    client.force_login(marketer_mia)
    page = client.get("/reports/", {**OCTOBER, "mode": "cohort"})
    assert page.status_code == 200
    funnel = page.context["funnel"]
    assert [s.count for s in funnel] == [5, 4, 3, 1, 1]

    listed = client.get(funnel[2].link)  # the cohort's SQLs
    assert {c.email for c in listed.context["found"].contacts} == {
        "ann@example.com",
        "bob@example.com",
        "fay@example.com",
    }
    rejected = page.context["rejections"].by_reason
    other = next(r for r in rejected if r["reason"] == "other")
    assert {c.email for c in client.get(other["link"]).context["found"].contacts} == {"eve@example.com"}


def test_each_table_downloads_as_csv(client, marketer_mia, october):
    client.force_login(marketer_mia)
    response = client.get("/reports/funnel.csv", {**OCTOBER, "mode": "period"})

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:2] == ["stage", "contacts"] and [r[1] for r in rows[1:]] == ["5", "5", "3", "1", "1"]
    for table in ("channels", "weekly", "rejections", "speed", "scores"):
        assert client.get(f"/reports/{table}.csv", OCTOBER).status_code == 200


def test_sales_sees_only_its_own_speed_row(client, rep_sam, october):
    client.force_login(rep_sam)
    page = client.get("/reports/", OCTOBER)

    assert page.status_code == 200 and "funnel" not in page.context
    assert [r.rep_id for r in page.context["speed"]["reps"]] == [rep_sam.pk]
    assert client.get("/reports/funnel.csv", OCTOBER).status_code == 404


def test_the_reports_are_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]

    assert {"/api/v1/reports/funnel", "/api/v1/reports/speed", "/api/v1/reports/rejections"} <= set(paths)


def test_median_time_in_stage_counts_the_stays_that_ended_in_the_period(api, october):
    body = api("funnel", **OCTOBER, mode="period").json()

    assert [s["median_hours_in_stage"] for s in body["stages"]] == [24.0, 21.0, 27.0, 360.0, None]


def test_a_recorded_move_says_since_when_the_contact_was_in_the_stage_it_left(db, admin_ada):
    from crm import lifecycle
    from crm.lifecycle import Actor, Move

    contact = Contact.objects.create(email="new@example.com")
    first = lifecycle.move(contact_id=contact.pk, to=Stage.MQL, by=Actor.of(admin_ada))
    lifecycle.move_many(moves=[Move(contact.pk, Stage.MQL, Stage.SQL, "r", 80)], by=Actor.scoring(1))

    second = StageChange.objects.filter(contact=contact).latest("at")
    assert first.since == Contact.objects.scored().get(pk=contact.pk).created_at and second.since == first.at
