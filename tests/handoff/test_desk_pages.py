"""The desk settings page: mode, offer time, calendar, weights and routing rules, each parsed and checked."""

from __future__ import annotations

import pytest

from handoff.models import Desk, Rep, RoutingRule

SETTINGS = {
    "action": "settings",
    "mode": "round_robin",
    "offer_minutes": "5",
    "business_hours": "on",
    "time_zone": "Europe/Berlin",
    "start_0": "09:00",
    "end_0": "17:00",
    "start_4": "09:00",
    "end_4": "15:30",
    "holidays": "2026-12-25\n2026-12-26\n",
}


@pytest.fixture
def ada(client, admin_ada):
    client.force_login(admin_ada)
    return client


def test_an_admin_sets_round_robin_and_the_calendar(ada):
    assert ada.post("/settings/desk/", SETTINGS).status_code == 302
    desk = Desk.get()
    assert (desk.mode, desk.offer_minutes, desk.business_hours, desk.time_zone) == (
        "round_robin",
        5,
        True,
        "Europe/Berlin",
    )
    assert desk.hours == {"0": ["09:00", "17:00"], "4": ["09:00", "15:30"]}
    assert desk.holidays == ["2026-12-25", "2026-12-26"]
    page = ada.get("/settings/desk/").content.decode()
    assert 'value="15:30"' in page and "2026-12-25" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end_0": "08:00"}, "give a start and a later end"),
        ({"start_4": ""}, "give a start and a later end"),
        ({"start_0": "", "end_0": "", "start_4": "", "end_4": ""}, "at least one weekday"),
        ({"holidays": "25.12.2026"}, "is not a date"),
        ({"holidays": "٢٠٢٦-١٢-٢٥"}, "write the date as YYYY-MM-DD"),
        ({"time_zone": "Mars/Olympus"}, "Select a valid choice"),
        ({"offer_minutes": "0"}, "greater than or equal to"),
        ({"offer_minutes": "99999999999"}, "less than or equal to"),
        ({"mode": "chaos"}, "Select a valid choice"),
        ({"start_0": "25:00"}, "Enter a valid time"),
    ],
)
def test_bad_settings_are_refused_and_nothing_changes(ada, change, message):
    response = ada.post("/settings/desk/", SETTINGS | change)
    assert response.status_code == 400 and message in response.content.decode()
    assert Desk.get().mode == "open" and not Desk.get().business_hours


def test_weights_and_routing_rules(ada, rep_sam):
    assert ada.post("/settings/desk/", {"action": "weight", "rep": rep_sam.pk, "weight": "3"}).status_code == 302
    assert Rep.objects.get(pk=rep_sam.pk).weight == 3
    assert ada.post("/settings/desk/", {"action": "weight", "rep": rep_sam.pk, "weight": "0"}).status_code == 400

    rule = {"action": "rule", "name": "Germany", "position": "1", "country": "DE", "grade": "A", "reps": [rep_sam.pk]}
    assert ada.post("/settings/desk/", rule).status_code == 302
    saved = RoutingRule.objects.get()
    assert (saved.country, saved.grade, list(saved.reps.all())) == ("DE", "A", [rep_sam])
    bad = ada.post("/settings/desk/", rule | {"min_size": "500", "max_size": "10"})
    assert bad.status_code == 400 and "upper size is below" in bad.content.decode()
    assert "Germany" in ada.get("/settings/desk/").content.decode()
    ada.post(f"/settings/desk/rules/{saved.pk}/delete")
    assert not RoutingRule.objects.exists()


def test_a_weight_for_someone_not_in_sales_is_refused(ada, marketer_mia):
    assert ada.post("/settings/desk/", {"action": "weight", "rep": marketer_mia.pk, "weight": "2"}).status_code == 400
    assert not Rep.objects.exists()


def test_a_calendar_without_working_time_is_refused(ada):
    from datetime import date, timedelta

    seconds = ada.post(
        "/settings/desk/", SETTINGS | {"start_0": "09:00:30", "end_0": "09:00:45", "start_4": "", "end_4": ""}
    )
    assert seconds.status_code == 400 and "a later end" in seconds.content.decode()  # the same minute
    mondays = [date(2026, 11, 30) + timedelta(weeks=w) for w in range(170)]
    only_mondays = SETTINGS | {"start_4": "", "end_4": "", "holidays": "\n".join(d.isoformat() for d in mondays)}
    refused = ada.post("/settings/desk/", only_mondays)
    assert refused.status_code == 400 and "no working time in the next three years" in refused.content.decode()
    assert not Desk.get().business_hours


def test_a_calendar_stored_wrong_does_not_stop_the_queue(client, rep_sam, db):
    from tests.handoff.conftest import sql_entry

    Desk.objects.update_or_create(pk=1, defaults={"business_hours": True, "time_zone": "Nowhere/Else", "hours": "x"})
    entry = sql_entry()  # enqueued with clock-time SLAs
    client.force_login(rep_sam)
    assert client.get("/queue/").status_code == 200
    assert client.post(f"/queue/{entry.pk}/claim").status_code == 302
