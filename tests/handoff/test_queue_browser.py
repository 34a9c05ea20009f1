"""The queue in headless Chromium: two reps race for one lead; a rejection reaches marketing."""

from __future__ import annotations

import pytest

from tests.handoff.conftest import sql_entry
from tests.scores import reloaded

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_two_reps_claim_at_once_one_wins_and_the_other_sees_who(signed_in, live_server, rep_sam, rep_ria):
    entry = sql_entry(first_name="Ada", last_name="Lovelace")
    sam, ria = signed_in(rep_sam), signed_in(rep_ria)
    for page in (sam, ria):
        page.goto(f"{live_server.url}/queue/")
        page.wait_for_function("window.htmx !== undefined")
        page.locator(f"#entry-{entry.pk} button").wait_for()

    statuses = []
    for page in (sam, ria):
        page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/claim") else None)
    # Both clicks are sent before either answer arrives.
    sam.locator(f"#entry-{entry.pk} button").click(no_wait_after=True)
    ria.locator(f"#entry-{entry.pk} button").click(no_wait_after=True)
    for page in (sam, ria):
        page.locator(f"#mine-{entry.pk}, [role=alert]").first.wait_for()

    assert statuses == [200, 200]  # both answered in place by htmx (a plain form post would get a 302)
    winners = [p for p in (sam, ria) if p.locator(f"#mine-{entry.pk}").count()]
    assert len(winners) == 1
    loser = ria if winners[0] is sam else sam
    winner_name = "Sam Seller" if winners[0] is sam else "Ria Rep"
    assert loser.get_by_role("alert").inner_text() == f"Already claimed by {winner_name}."
    assert loser.locator(f"#mine-{entry.pk}").count() == 0


def test_a_rep_rejects_with_a_reason_and_marketing_reads_it(signed_in, live_server, rep_sam, marketer_mia):
    entry = sql_entry(first_name="Grace", last_name="Hopper")
    sam = signed_in(rep_sam)
    sam.goto(f"{live_server.url}/queue/")
    sam.locator(f"#entry-{entry.pk} button").click()
    row = sam.locator(f"#mine-{entry.pk}")
    row.get_by_text("Reject…").click()
    row.get_by_label("Reason").select_option(label="No budget")
    row.get_by_label("Details").fill("Budget frozen until Q3")
    row.get_by_role("button", name="Send back to marketing").click()
    sam.get_by_text("Nothing claimed").wait_for()

    mia = signed_in(marketer_mia)
    mia.goto(f"{live_server.url}/leads/{entry.contact_id}/")

    assert mia.locator("#rejection").inner_text() == "Rejected by sales: No budget — Budget frozen until Q3"
    assert "Lead" in mia.get_by_role("heading", level=1).inner_text()


def test_on_a_phone_a_rep_claims_and_logs_a_first_touch(signed_in, live_server, rep_sam):
    entry = sql_entry(first_name="Katherine", last_name="Johnson")
    sam = signed_in(rep_sam)
    sam.set_viewport_size({"width": 390, "height": 844})
    sam.goto(f"{live_server.url}/queue/")
    claim = sam.locator(f"#entry-{entry.pk}").get_by_role("button", name="Claim")
    assert claim.bounding_box()["x"] + claim.bounding_box()["width"] <= 390  # reachable without scrolling sideways
    claim.click()
    row = sam.locator(f"#mine-{entry.pk}")
    row.get_by_label("How").select_option(label="Call")
    row.get_by_label("Note").fill("Left a voicemail")
    row.get_by_role("button", name="Log first touch").click()
    row.get_by_text("Call,").wait_for()

    entry = reloaded(entry)
    assert (entry.status, entry.first_touch_kind, entry.first_touch_note) == ("working", "call", "Left a voicemail")
    assert sam.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
