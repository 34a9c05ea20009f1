from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.models import Company, Contact, Stage, StageChange
from handoff import services
from handoff.models import QueueEntry
from handoff.services import HandoffRefused
from tests.handoff.conftest import sql_entry
from tests.scores import make_contact

Status = QueueEntry.Status


def test_entering_sql_opens_one_entry_with_its_handoff_note(entry, rep_sam):
    assert entry.status == Status.WAITING
    assert entry.sent_by == "scoring v1"
    assert entry.facts | {"requested": []} == {
        "job_title": "Head of Data",
        "company": "",
        "company_size": None,
        "phone": "+1 555",
        "requested": [],
    }
    services.enqueue(contact_ids=[entry.contact_id], sent_by="scoring v1", sla=services.Sla(60, 120), requested={})
    assert QueueEntry.objects.filter(contact=entry.contact).count() == 1


def test_each_entry_keeps_its_three_largest_reasons_its_company_and_what_it_asked_for(db):
    """Opened together, each entry has its own: the breakdown's three largest points, either sign, in the
    breakdown's order among equals (Pricing before the fit rule of as many points), its company and forms."""
    breakdown = [
        {"rule": "Page view", "kind": "behaviour", "events": 4, "points": 4.0},
        {"rule": "Pricing or product page", "kind": "behaviour", "events": 2, "points": 10.0},
        {"rule": "Unsubscribed", "kind": "behaviour", "events": 1, "points": -20.0},
        {"rule": "Senior job title", "kind": "fit", "events": None, "points": 15.0},
        {"rule": "Company of 50+", "kind": "fit", "events": None, "points": 10.0},
    ]
    acme = Company.objects.create(name="Acme", size=120)
    asked = make_contact(email="asked@example.com", company=acme, stage=Stage.SQL, score=19, breakdown=breakdown)
    quiet = make_contact(email="quiet@example.com", stage=Stage.SQL, score=0, breakdown=[])

    opened = services.enqueue(
        contact_ids=[quiet.pk, asked.pk],
        sent_by="scoring v1",
        sla=services.Sla(60, 120),
        requested={asked.pk: ["Demo request", "Ebook"]},
    )

    assert opened == 2
    first, second = QueueEntry.objects.get(contact=asked), QueueEntry.objects.get(contact=quiet)
    assert [r["rule"] for r in first.reasons] == ["Unsubscribed", "Senior job title", "Pricing or product page"]
    assert first.reasons == sorted(asked.breakdown, key=lambda e: -abs(e["points"]))[:3]
    assert (first.score, first.facts["company"], first.facts["company_size"]) == (19, "Acme", 120)
    assert first.facts["requested"] == ["Demo request", "Ebook"]
    assert (second.reasons, second.facts["requested"], second.facts["company"], second.score) == ([], [], "", 0)


def test_opening_many_entries_takes_the_queries_of_one(db):
    """A publish opens thousands at once: one statement for all, and no entry read back when no webhook
    endpoint listens."""
    first, one, *many = [make_contact(email=f"n{i}@example.com", stage=Stage.SQL, score=80).pk for i in range(42)]

    def opening(contacts: list[int]) -> int:
        with CaptureQueriesContext(connection) as queries:
            services.enqueue(contact_ids=contacts, sent_by="scoring v1", sla=services.Sla(60, 120), requested={})
        return len(queries)

    opening([first])  # the first creates the desk's row
    assert opening([one]) == opening(many) == 3  # the desk, the statement, whether anyone listens
    assert QueueEntry.objects.count() == 42


def test_the_sales_group_is_emailed_about_a_new_sql_with_a_link_to_the_lead(rep_sam, rep_ria, settings):
    settings.BASE_URL = "https://baton.example.com"
    entry = sql_entry(first_name="Grace")

    assert services.tell_sales(entry_ids=[entry.pk]) == 1
    assert "New SQL: Grace" in mail.outbox[0].subject
    assert set(mail.outbox[0].to) == {"sam@baton.test", "ria@baton.test"}
    assert f"https://baton.example.com/leads/{entry.contact_id}/" in mail.outbox[0].body


def test_an_entry_claimed_before_the_email_goes_out_is_not_announced(entry, rep_sam):
    services.claim(entry_id=entry.pk, rep=rep_sam)

    assert services.tell_sales(entry_ids=[entry.pk]) == 0
    assert not mail.outbox


def test_a_claim_gives_the_entry_and_the_contact_to_the_rep(entry, rep_sam):
    claimed = services.claim(entry_id=entry.pk, rep=rep_sam)

    assert (claimed.status, claimed.owner) == (Status.CLAIMED, rep_sam)
    assert claimed.first_touch_due_at == claimed.claimed_at + timedelta(minutes=120)
    assert Contact.objects.scored().get(pk=entry.contact_id).owner == rep_sam


def test_a_second_rep_is_told_who_has_it(entry, rep_sam, rep_ria):
    services.claim(entry_id=entry.pk, rep=rep_sam)

    with pytest.raises(HandoffRefused, match="Already claimed by Sam Seller"):
        services.claim(entry_id=entry.pk, rep=rep_ria)
    assert QueueEntry.objects.get(pk=entry.pk).owner == rep_sam


def test_a_rep_at_the_claim_limit_cannot_claim_more(db, rep_sam):
    first, second = sql_entry(), sql_entry()
    services.claim(entry_id=first.pk, rep=rep_sam, limit=1)

    with pytest.raises(HandoffRefused, match="most allowed"):
        services.claim(entry_id=second.pk, rep=rep_sam, limit=1)


def test_first_touch_then_accept_makes_an_opportunity(entry, rep_sam):
    services.claim(entry_id=entry.pk, rep=rep_sam)
    services.first_touch(entry_id=entry.pk, rep=rep_sam, kind="call", note="Booked a demo")

    accepted = services.accept(entry_id=entry.pk, rep=rep_sam)

    assert accepted.status == Status.ACCEPTED
    change = StageChange.objects.get(contact=entry.contact)
    assert (change.from_stage, change.to_stage, change.by_label) == ("sql", "opportunity", "Sam Seller")


def test_a_rejection_recycles_the_lead_with_the_reason(entry, rep_sam):
    services.claim(entry_id=entry.pk, rep=rep_sam)

    services.reject(entry_id=entry.pk, rep=rep_sam, reason="no_budget", text="Next fiscal year")

    contact = Contact.objects.scored().get(pk=entry.contact_id)
    assert (contact.stage, contact.owner, contact.recycled_at is not None) == (Stage.LEAD, None, True)
    assert StageChange.objects.get(contact=contact).reason == "Rejected by sales: No budget — Next fiscal year"


def test_won_and_lost_close_an_opportunity(db, rep_sam):
    winner, loser = sql_entry(), sql_entry()
    for e in (winner, loser):
        services.claim(entry_id=e.pk, rep=rep_sam)
        services.accept(entry_id=e.pk, rep=rep_sam)

    services.won(entry_id=winner.pk, rep=rep_sam)
    services.lost(entry_id=loser.pk, rep=rep_sam, reason="competitor")

    assert Contact.objects.scored().get(pk=winner.contact_id).stage == Stage.CUSTOMER
    assert Contact.objects.scored().get(pk=loser.contact_id).stage == Stage.DISQUALIFIED
    assert StageChange.objects.filter(contact_id=loser.contact_id, to_stage="disqualified").get().reason == "lost"


@pytest.mark.parametrize(
    ("action", "kwargs", "message"),
    [
        (services.first_touch, {"kind": "call"}, "needs it to be claimed"),
        (services.accept, {}, "needs it to be claimed or first touch logged"),
        (services.reject, {"reason": "bad_fit"}, "needs it to be claimed"),
        (services.won, {}, "needs it to be accepted"),
        (services.lost, {"reason": "price"}, "needs it to be accepted"),
    ],
)
def test_actions_on_an_unclaimed_entry_are_refused_and_change_nothing(entry, rep_sam, action, kwargs, message):
    with pytest.raises(HandoffRefused, match=message):
        action(entry_id=entry.pk, rep=rep_sam, **kwargs)

    assert QueueEntry.objects.get(pk=entry.pk).status == Status.WAITING
    assert not StageChange.objects.exists()


def test_only_the_owner_can_work_a_claimed_entry(entry, rep_sam, rep_ria):
    services.claim(entry_id=entry.pk, rep=rep_sam)

    for action, kwargs in (
        (services.first_touch, {"kind": "call"}),
        (services.accept, {}),
        (services.reject, {"reason": "bad_fit"}),
    ):
        with pytest.raises(HandoffRefused, match="Already claimed by Sam Seller"):
            action(entry_id=entry.pk, rep=rep_ria, **kwargs)
    assert QueueEntry.objects.get(pk=entry.pk).status == Status.CLAIMED


@pytest.mark.parametrize(("reason", "text", "message"), [("", "", "Choose a reason"), ("other", " ", "Say why")])
def test_a_rejection_needs_a_reason(entry, rep_sam, reason, text, message):
    services.claim(entry_id=entry.pk, rep=rep_sam)

    with pytest.raises(HandoffRefused, match=message):
        services.reject(entry_id=entry.pk, rep=rep_sam, reason=reason, text=text)
    assert Contact.objects.scored().get(pk=entry.contact_id).stage == Stage.SQL


def test_a_first_touch_needs_a_kind(entry, rep_sam):
    services.claim(entry_id=entry.pk, rep=rep_sam)

    with pytest.raises(HandoffRefused, match="call, email or meeting"):
        services.first_touch(entry_id=entry.pk, rep=rep_sam, kind="carrier pigeon")
