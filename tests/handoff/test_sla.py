from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from crm.models import Contact
from handoff import services
from handoff.models import QueueEntry, SlaBreach


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
    assert Contact.objects.get(pk=entry.contact_id).owner is None


def test_a_touched_claim_is_not_taken_back(entry, rep_sam):
    services.claim(entry_id=entry.pk, rep=rep_sam)
    services.first_touch(entry_id=entry.pk, rep=rep_sam, kind="email")

    assert services.enforce_sla(now=timezone.now() + timedelta(days=1)) == (0, 0)
    assert QueueEntry.objects.get(pk=entry.pk).owner == rep_sam
