from __future__ import annotations

from collections import Counter

import pytest
from django.utils import timezone

from crm import lifecycle
from crm.models import Contact, Stage, StageChange
from leads.models import Event
from scoring import criteria, services
from scoring.criteria import CriteriaRefused
from scoring.models import CriteriaVersion
from tests.scores import reloaded


@pytest.fixture
def mqls(db, source):
    """Contacts scored 40, 55 and 106 now (no sales intent): all MQLs under version 1."""
    plan = {
        "m0": [("form_submit", {"form": "webinar"})] * 2 + [("email_open", {})] * 10,
        "m1": [("form_submit", {"form": "webinar"})] * 2 + [("email_open", {})] * 10 + [("email_click", {})] * 5,
        "m2": [("form_submit", {"form": "webinar"})] * 2
        + [("email_open", {})] * 10
        + [("email_click", {})] * 10
        + [("page_view", {"path": "/pricing"})] * 6,
    }
    now, made = timezone.now(), []
    for name, events in plan.items():
        contact = Contact.objects.create(email=f"{name}@example.com")
        Event.objects.bulk_create(
            [
                Event(
                    source=source,
                    client_id=f"{name}-{i}",
                    contact=contact,
                    type=t,
                    properties=p,
                    occurred_at=now,
                    received_at=now,
                )
                for i, (t, p) in enumerate(events)
            ]
        )
        made.append(contact)
    services.rescore(contact_ids=[c.pk for c in made])
    assert [Contact.objects.scored().get(pk=c.pk).score for c in made] == [40, 55, 106]
    return made


def test_a_draft_copies_the_active_version_once(db):
    first = criteria.draft()

    assert criteria.draft() == first
    assert (first.number, first.status) == (2, "draft")
    assert first.behaviour_rules.count() == 9 and first.fit_rules.count() == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mql_threshold": -1}, "below zero"),
        ({"sql_threshold": 30}, "SQL threshold must not be under"),
        ({"grade_b": 40}, "Grade bands"),
    ],
)
def test_invalid_settings_are_refused_and_nothing_changes(db, admin_ada, change, message):
    draft = criteria.draft()
    CriteriaVersion.objects.filter(pk=draft.pk).update(**change)
    draft = reloaded(draft)
    with pytest.raises(CriteriaRefused, match=message):
        criteria.publish(version=draft, by=admin_ada)
    assert CriteriaVersion.objects.get(status="active").number == 1


def test_invalid_rules_are_named(db):
    draft = criteria.draft()
    draft.fit_rules.create(name="Shoe size", field="shoe_size", operator="gte", values=["x"], points=5)
    draft.behaviour_rules.create(name="", event_type="Page View", points=1)
    draft.behaviour_rules.create(name="Sneaky", event_type="score_adjustment", points=50)

    found = " ".join(criteria.problems(draft))

    assert "unknown field “shoe_size”" in found
    assert "≥ and ≤ need a number" in found
    assert "needs a name and an event type" in found
    assert "“Sneaky”: manual adjustments count by themselves" in found


def test_a_higher_mql_threshold_moves_contacts_out_and_republishing_moves_them_back(mqls, admin_ada):
    draft = criteria.draft()
    CriteriaVersion.objects.filter(pk=draft.pk).update(mql_threshold=60, sql_threshold=80)
    draft = reloaded(draft)
    preview = criteria.preview(draft)

    run = criteria.publish(version=draft, by=admin_ada)
    services.run_full_rescore(run_id=run.pk)

    stages = dict(Contact.objects.values_list("email", "stage"))
    # 40 falls below 60 − 5; 55 sits inside the hysteresis band and stays; 106 stays.
    assert stages == {"m0@example.com": "lead", "m1@example.com": "mql", "m2@example.com": "mql"}
    assert StageChange.objects.filter(to_stage="lead", by_label="scoring v2").count() == 1
    assert dict(preview.stages) == {"lead": 1, "mql": 2}  # the preview said what publishing then did
    assert preview.moves[("mql", "lead")] == 1

    again = criteria.republish(version=CriteriaVersion.objects.get(number=1), by=admin_ada)
    services.run_full_rescore(run_id=again.pk)

    assert set(Contact.objects.values_list("stage", flat=True)) == {Stage.MQL}
    assert StageChange.objects.filter(to_stage="mql", by_label="scoring v3").count() == 1
    assert CriteriaVersion.objects.get(status="active").number == 3
    v1, v2, v3 = CriteriaVersion.objects.order_by("number")
    assert criteria.changes(v3, v2) == ["Republished from v1."]


@pytest.mark.parametrize(
    "change",
    [
        {"mql_threshold": 60, "sql_threshold": 80, "grade_c": 1},
        {"mql_threshold": 50, "half_life_days": 7, "grade_c": 1},
    ],
    ids=["from the stored facts", "from the events"],
)
def test_the_preview_counts_what_publishing_then_does(mqls, admin_ada, change):
    """Stages and grades, today and after, for those the stage rules might move (one by one) and those they
    cannot (counted together: cold leads, a contact in sql)."""
    for i in range(3):
        Contact.objects.create(email=f"cold{i}@example.com")
    lifecycle.move(contact_id=mqls[2].pk, to=Stage.SQL, by=lifecycle.Actor.of(admin_ada), reason="Called us")
    services.rescore(contact_ids=list(Contact.objects.values_list("pk", flat=True)))

    def now() -> tuple[Counter, Counter]:
        scored = Contact.objects.scored()
        return Counter(scored.values_list("stage", flat=True)), Counter(scored.values_list("grade", flat=True))

    today = now()
    draft = criteria.draft()
    CriteriaVersion.objects.filter(pk=draft.pk).update(**change)
    preview = criteria.preview(reloaded(draft))
    run = criteria.publish(version=reloaded(draft), by=admin_ada)
    services.run_full_rescore(run_id=run.pk)

    assert (preview.today_stages, preview.today_grades) == today
    assert (preview.stages, preview.grades) == now()
    moved = StageChange.objects.filter(by_label="scoring v2")
    assert preview.moves == Counter(moved.values_list("from_stage", "to_stage"))
    assert preview.moves and preview.grades != preview.today_grades  # someone moved, and grades changed
    # Those it names as moving (few here: every one) are those who moved, with the score that moved them.
    assert sorted(preview.samples) == sorted(moved.values_list("contact_id", "from_stage", "to_stage", "score"))


def test_the_history_says_what_each_version_changed(db, admin_ada):
    draft = criteria.draft()
    CriteriaVersion.objects.filter(pk=draft.pk).update(mql_threshold=45)
    draft.behaviour_rules.filter(name="Email click").update(points=4)
    draft.fit_rules.filter(name="Has a budget").delete()
    draft = reloaded(draft)
    changed = criteria.changes(draft, CriteriaVersion.objects.get(number=1))

    assert "MQL threshold: 40 → 45" in changed
    assert "Behaviour rule “Email click”: points 3.0 → 4.0." in changed
    assert "Removed fit rule “Has a budget”." in changed
