"""Rule evidence and suggested points on a generated history where one rule predicts acceptance and another
is noise (PRODUCT.md §10)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Contact
from handoff.models import QueueEntry
from leads.models import Event, Source
from scoring import criteria, evidence, suggestions
from scoring.engine import Behaviour, Criteria, Fit
from scoring.models import CriteriaVersion
from scoring.services import criteria_of

RULES = Criteria(
    version=1,
    behaviour=(
        Behaviour("Pricing page", "page_view", 5, property_key="path", operator="starts_with", values=("/pricing",)),
        Behaviour("Email open", "email_open", 1),
        Behaviour("Webinar attended", "webinar_attended", 10),
        Behaviour("Careers page", "page_view", 3, property_key="path", operator="starts_with", values=("/careers",)),
    ),
    fit=(Fit("Senior title", "job_title", "contains", 10, ("head",)),),
)


def history(n: int, *, seed: int = 1) -> None:
    """n handoffs in the last 60 days: pricing visitors are accepted 80 % of the time, others 30 %; email opens
    are a coin toss; careers visitors (3 points!) are accepted less; nobody attended a webinar."""
    rng, now = random.Random(seed), timezone.now()
    source = Source.objects.get_or_create(name="website")[0]
    contacts, events, entries = [], [], []
    for i in range(n):
        pricing, opened, careers = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.3
        accepted = rng.random() < (0.8 if pricing else 0.3) * (0.5 if careers else 1)
        contacts.append(
            Contact(email=f"h{i}@example.com", job_title="Head of Ops" if rng.random() < 0.5 else "Analyst")
        )
        entered = now - timedelta(days=rng.uniform(1, 60))
        facts = (
            [("/pricing", "page_view")] * pricing
            + [("", "email_open")] * opened
            + [("/careers", "page_view")] * careers
        )
        events.append([(path, kind, entered - timedelta(hours=1)) for path, kind in facts])
        # An event after the handoff never counts: it was not known then.
        events[-1].append(("/pricing", "page_view", entered + timedelta(hours=1)))
        status = ("won" if rng.random() < 0.5 else "accepted") if accepted else "rejected"
        entries.append((entered, status))
    contacts = Contact.objects.bulk_create(contacts)
    Event.objects.bulk_create(
        Event(
            source=source,
            client_id=f"ev{c.pk}-{k}",
            contact=c,
            type=kind,
            properties={"path": path},
            occurred_at=at,
            received_at=at,
        )
        for c, evs in zip(contacts, events, strict=True)
        for k, (path, kind, at) in enumerate(evs)
    )
    QueueEntry.objects.bulk_create(
        QueueEntry(
            contact=c,
            status=status,
            sent_by="scoring v1",
            score=80,
            entered_at=entered,
            unclaimed_due_at=entered + timedelta(hours=1),
            first_touch_minutes=120,
            routed_at=entered,
        )
        for c, (entered, status) in zip(contacts, entries, strict=True)
    )


def by_name(found):
    return {r.name: r for r in found.rules}


def test_evidence_flags_the_predictive_rule_the_noise_the_dead_and_the_inverted(db):
    history(600)
    found = evidence.evidence(RULES, days=180)
    rules = by_name(found)

    assert found.labelled == 600
    pricing = rules["Pricing page"]
    assert pricing.flag == "predictive" and pricing.lift[1] > 1.5  # the whole interval well above 1
    assert pricing.rate_with > 0.6 and pricing.rate_without < 0.35
    assert rules["Email open"].flag == "weak"
    assert rules["Webinar attended"].flag == "dead" and rules["Webinar attended"].matched == 0
    assert rules["Careers page"].flag == "inverted"  # positive points, accepted less often
    assert pricing.matched == sum(1 for h in found.handoffs if h.hits[0])  # as of the handoff: ~half, not all
    assert 200 < pricing.matched < 400


def test_the_window_and_unlabelled_handoffs(db):
    history(50)
    QueueEntry.objects.filter(pk__in=QueueEntry.objects.order_by("pk").values("pk")[:10]).update(status="claimed")
    assert evidence.evidence(RULES, days=180).labelled == 40  # waiting, claimed, working: no outcome yet
    QueueEntry.objects.update(entered_at=timezone.now() - timedelta(days=100))
    assert evidence.evidence(RULES, days=90).labelled == 0


def test_lift_and_its_interval():
    value, low, high = evidence.lift(40, 50, 15, 50)  # 80 % against 30 %
    assert round(value, 3) == 2.667 and low < value < high and low > 1.7
    value, low, high = evidence.lift(10, 10, 0, 10)  # empty cells: 0.5 added to each
    assert value == pytest.approx((10.5 / 11) / (0.5 / 11)) and low > 1
    assert evidence.lift(3, 0, 2, 5) is None


def test_the_regression_recovers_a_known_effect():
    rng = random.Random(3)
    rows = []
    for _ in range(4000):
        x = (rng.random() < 0.5, rng.random() < 0.5)
        z = -1 + 2 * x[0]  # the first feature matters (+2 log-odds), the second not at all
        rows.append((x, rng.random() < 1 / (1 + pow(2.718281828, -z))))
    intercept, first, second = suggestions.logistic(rows, l2=0.01)
    assert intercept == pytest.approx(-1, abs=0.15) and first == pytest.approx(2, abs=0.2)
    assert abs(second) < 0.15


def test_suggested_points_raise_the_predictor_and_lower_the_noise_in_the_draft(db):
    history(600)
    draft = criteria.draft()
    draft.behaviour_rules.all().delete()
    draft.fit_rules.all().delete()
    for position, rule in enumerate(RULES.behaviour[:3]):  # the predictor, the noise (5 points each), the dead
        draft.behaviour_rules.create(
            position=position,
            name=rule.name,
            event_type=rule.event_type,
            points=5,
            property_key=rule.property_key,
            operator=rule.operator,
            values=list(rule.values),
        )
    found = evidence.evidence(criteria_of(draft))

    suggested = {s.name: s for s in suggestions.suggest(found)}
    suggestions.apply(draft, list(suggested.values()))

    points = dict(draft.behaviour_rules.values_list("name", "points"))
    assert points["Pricing page"] > 5 and "raised" in suggested["Pricing page"].why
    assert points["Email open"] < 5 and "lowered" in suggested["Email open"].why
    assert points["Webinar attended"] == 5 and suggested["Webinar attended"].why == "matched nobody: kept"
    active = CriteriaVersion.objects.get(status="active")
    assert not active.behaviour_rules.filter(name="Pricing page").exists()  # the draft changed, never v1


def test_under_200_labelled_handoffs_it_says_how_many_more(db):
    history(150)
    with pytest.raises(suggestions.NotEnoughHandoffs, match="50 more labelled handoffs"):
        suggestions.suggest(evidence.evidence(RULES))


def test_the_criteria_page_shows_the_evidence_and_suggests(client, admin_ada, db):
    history(250)
    client.force_login(admin_ada)
    page = client.get("/criteria/").content.decode()
    assert "Evidence rests on 250 labelled handoffs" in page and 'id="evidence-rules"' in page
    assert client.get("/criteria/?days=abc").status_code == 200  # a bad window: the default
    answer = client.post("/criteria/", {"action": "suggest"}).content.decode()
    assert "Suggested points, written into draft" in answer


@pytest.mark.parametrize(
    ("points", "with_rule", "without", "flag"),
    [
        (5, (48, 100), (50, 100), "weak"),  # a hair below 1, but no telling: noise is weak, not inverted
        (5, (20, 100), (60, 100), "inverted"),
        (-5, (70, 100), (30, 100), "inverted"),
        (-5, (20, 100), (60, 100), "predictive"),
        (5, (0, 0), (50, 100), "dead"),
    ],
)
def test_flags(points, with_rule, without, flag):
    rule = evidence.RuleEvidence("r", "behaviour", points, with_rule[1], with_rule[0], 0, without[1], without[0], 0)
    assert rule.flag == flag


def test_fit_rules_alone_count_each_handoff_once(db):
    history(40)
    fit_only = Criteria(version=1, behaviour=(), fit=RULES.fit)
    found = evidence.evidence(fit_only)
    assert found.labelled == 40 and found.rules[0].matched + found.rules[0].unmatched == 40


def test_a_backtest_with_too_short_a_half_life_is_refused(client, admin_ada, db):
    draft = criteria.draft()
    CriteriaVersion.objects.filter(pk=draft.pk).update(half_life_days=0.05)
    client.force_login(admin_ada)
    response = client.post("/criteria/", {"action": "backtest", "days": "90"})
    assert response.status_code == 400 and "too short to replay 90 days" in response.content.decode()
