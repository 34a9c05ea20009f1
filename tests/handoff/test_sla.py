from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from crm.models import Contact
from handoff import services
from handoff.models import QueueEntry, SlaBreach
from tests.scores import reloaded


def test_an_unclaimed_entry_past_its_sla_is_recorded_once(entry):
    later = timezone.now() + timedelta(minutes=61)

    assert services.enforce_sla(now=later) == (1, 0)
    assert services.enforce_sla(now=later + timedelta(minutes=5)) == (0, 0)
    assert SlaBreach.objects.get(entry=entry).kind == "unclaimed"
    assert QueueEntry.objects.get(pk=entry.pk).status == "waiting"


def test_nothing_is_breached_inside_the_sla(entry, rep_sam):
    services.claim(entry_id=entry.pk, rep=rep_sam)

    assert services.enforce_sla(now=timezone.now() + timedelta(minutes=59)) == (0, 0)


def test_a_claim_untouched_past_its_sla_goes_back_to_the_queue_flagged(entry, rep_sam):
    services.claim(entry_id=entry.pk, rep=rep_sam)

    assert services.enforce_sla(now=timezone.now() + timedelta(minutes=121))[1] == 1

    back = QueueEntry.objects.get(pk=entry.pk)
    assert (back.status, back.owner, back.flagged, back.breaches) == ("waiting", None, True, 1)
    assert SlaBreach.objects.get(entry=entry, kind="first_touch").owner == rep_sam
    assert Contact.objects.scored().get(pk=entry.contact_id).owner is None


def test_a_touched_claim_is_not_taken_back(entry, rep_sam):
    services.claim(entry_id=entry.pk, rep=rep_sam)
    services.first_touch(entry_id=entry.pk, rep=rep_sam, kind="email")

    assert services.enforce_sla(now=timezone.now() + timedelta(days=1)) == (0, 0)
    assert QueueEntry.objects.get(pk=entry.pk).owner == rep_sam


def publish_sla(admin, *, unclaimed: int, first_touch: int) -> None:
    from scoring import criteria
    from scoring.models import CriteriaVersion

    draft = criteria.draft()
    CriteriaVersion.objects.filter(pk=draft.pk).update(
        sla_unclaimed_minutes=unclaimed, sla_first_touch_minutes=first_touch
    )
    draft = reloaded(draft)
    criteria.publish(version=draft, by=admin)


def test_a_published_sla_applies_to_entries_scoring_opens(admin_ada, contact, add_event, rescore, rep_sam):
    publish_sla(admin_ada, unclaimed=1, first_touch=1)
    add_event(contact, "form_submit", form="demo")
    for _ in range(6):
        add_event(contact, "page_view", path="/pricing")

    rescore(contact)

    entry = QueueEntry.objects.get(contact=contact)
    assert entry.unclaimed_due_at == entry.entered_at + timedelta(minutes=1)
    claimed = services.claim(entry_id=entry.pk, rep=rep_sam)
    assert claimed.first_touch_due_at == claimed.claimed_at + timedelta(minutes=1)
    assert services.enforce_sla(now=claimed.claimed_at + timedelta(minutes=2)) == (0, 1)  # the breach follows it


def test_a_published_sla_applies_to_marketings_hand_over(client, admin_ada, marketer_mia):
    publish_sla(admin_ada, unclaimed=3, first_touch=7)
    lead = Contact.objects.create(email="hand@example.com", stage="mql")
    client.force_login(marketer_mia)

    client.post("/leads/hand-over", {"ids": [lead.pk], "action": "send", "note": "Call today"})

    entry = QueueEntry.objects.get(contact=lead)
    assert entry.unclaimed_due_at == entry.entered_at + timedelta(minutes=3)
    assert entry.first_touch_minutes == 7
