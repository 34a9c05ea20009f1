"""The sales desk in Chromium: a rep goes available, gets an offer and takes it; claim next; an admin edits
the team calendar."""

from __future__ import annotations

import pytest

from handoff import services
from handoff.models import Desk, QueueEntry
from tests.handoff.conftest import sql_entry

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1440, 390])
def test_a_rep_marks_available_receives_an_offer_and_takes_it(signed_in, live_server, rep_sam, width):
    Desk.objects.update_or_create(pk=1, defaults={"mode": Desk.Mode.ROUND_ROBIN, "offer_minutes": 5})
    sam = signed_in(rep_sam)
    sam.set_viewport_size({"width": width, "height": 900})
    sam.goto(f"{live_server.url}/queue/")
    sam.get_by_label("Available for new leads").check()
    sam.get_by_text("New SQLs are offered to you in turn").wait_for()

    entry = sql_entry(first_name="Offered")
    services.route()
    sam.reload()
    offer = sam.locator(f"#offer-{entry.pk}")
    assert "Offered to you" in offer.inner_text()
    offer.get_by_role("button", name="Take it").click()

    sam.locator(f"#mine-{entry.pk}").wait_for()
    assert QueueEntry.objects.get(pk=entry.pk).owner == rep_sam
    assert sam.locator(f"#offer-{entry.pk}").count() == 0
    assert sam.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_claim_next_takes_the_top_lead_without_choosing(signed_in, live_server, rep_sam):
    low, top = sql_entry(first_name="Low"), sql_entry(first_name="Top")
    QueueEntry.objects.filter(pk=low.pk).update(score=71)
    sam = signed_in(rep_sam)
    sam.goto(f"{live_server.url}/queue/")
    sam.get_by_role("button", name="Claim next").click()

    sam.locator(f"#mine-{top.pk}").wait_for()
    assert sam.get_by_role("status").inner_text() == "Claimed the top lead."
    assert sam.locator(f"#entry-{top.pk}").count() == 0 and sam.locator(f"#entry-{low.pk}").count() == 1
    assert sam.locator("#waiting-count").inner_text() == "1"


def test_an_admin_edits_the_team_calendar(signed_in, live_server, admin_ada):
    ada = signed_in(admin_ada)
    ada.goto(f"{live_server.url}/queue/")
    ada.get_by_role("link", name="Desk settings").click()
    ada.get_by_label("Business hours").check()
    ada.get_by_label("Time zone").select_option("Europe/Berlin")
    for day in ("Monday", "Tuesday"):
        ada.get_by_label(f"{day} from").fill("09:00")
        ada.get_by_label(f"{day} to").fill("17:30")
    ada.get_by_label("Holidays").fill("2026-12-24")
    ada.get_by_role("button", name="Save desk settings").click()
    ada.get_by_text("Desk settings saved.").wait_for()

    desk = Desk.get()
    assert desk.business_hours and desk.time_zone == "Europe/Berlin"
    assert desk.hours == {"0": ["09:00", "17:30"], "1": ["09:00", "17:30"]} and desk.holidays == ["2026-12-24"]
