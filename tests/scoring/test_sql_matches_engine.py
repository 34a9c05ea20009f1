"""The set-based SQL path and the Python definition give the same numbers, on generated events and rules."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import Breakdown, Contact, Score, ScoreLegend
from leads.models import Event, Form, Source
from scoring import engine, services, sql
from tests.scores import reloaded
from tests.scoring.conftest import NOW, company

_n = itertools.count()
TYPES = ["page_view", "email_open", "form_submit", "email_unsubscribe"]
EVENT_TYPES = [*TYPES, engine.ADJUSTMENT]  # manual adjustments too, which no rule may name
PATHS = ["/", "/pricing", "/Product/tour", "/blog"]
FORMS = ["demo", "ebook", "webinar", "newsletter", "unknown-form"]
words = st.sampled_from(["pricing", "/pricing", "/product", "blog", "demo_request", "content", "head", "vp", "50"])
behaviour = st.builds(
    engine.Behaviour,
    name=st.uuids().map(str),
    event_type=st.sampled_from(TYPES),
    points=st.integers(-30, 50).map(float),
    cap=st.none() | st.integers(1, 40).map(float),
    property_key=st.sampled_from(["", "path", "form_kind", "form"]),
    operator=st.sampled_from(["equals", "contains", "starts_with", "in_list"]),
    values=st.lists(words, min_size=1, max_size=3).map(tuple),
)
fit = st.builds(
    engine.Fit,
    name=st.uuids().map(str),
    field=st.sampled_from(["job_title", "company_size", "budget", "email_domain", "channel", "profile.team"]),
    operator=st.sampled_from(["equals", "in_list", "contains", "gte", "lte", "is_set", "is_not_set"]),
    points=st.integers(-20, 20).map(float),
    values=st.lists(st.sampled_from(["head", "vp", "50", "gmail.com", "google", "10"]), min_size=1, max_size=2).map(
        tuple
    ),
)
criteria = st.builds(
    engine.Criteria,
    version=st.just(1),
    behaviour=st.lists(behaviour, max_size=5).map(tuple),
    fit=st.lists(fit, max_size=4).map(tuple),
    half_life_days=st.sampled_from([0, 7, 30, 90.5]),
)
events = st.lists(
    st.tuples(
        st.sampled_from(EVENT_TYPES),
        st.floats(0, 70),
        st.sampled_from(PATHS),
        st.sampled_from(FORMS),
        st.integers(-20, 20),  # an adjustment's points
        st.sampled_from([None, -3, 3]),  # and its expiry, in days from now (past, future, none)
    ),
    max_size=25,
)
profiles = st.fixed_dictionaries(
    {
        "job_title": st.sampled_from(["", "Head of Data", "VP Sales", "Engineer"]),
        "budget": st.sampled_from(["", "10k"]),
        "channel": st.sampled_from(["", "google", "linkedin"]),
        "size": st.none() | st.sampled_from([10, 50, 500]),
        "team": st.sampled_from([None, "12", "growth"]),
        "domain": st.sampled_from(["example.com", "gmail.com"]),
    }
)


def _contact_with(events, profile, recycled) -> tuple[Contact, list[engine.EventFacts], dict]:
    """A contact with these generated events and profile: (contact, the events as facts, its fit fields). Each
    example's rules are another version 1 (and 2): their legends go, to be written with their first scores."""
    ScoreLegend.objects.all().delete()
    source = Source.objects.get_or_create(name="website")[0]
    contact = Contact.objects.create(
        email=f"p{next(_n)}@{profile['domain']}",
        job_title=profile["job_title"],
        budget=profile["budget"],
        channel=profile["channel"],
        profile={"team": profile["team"]} if profile["team"] else {},
        company=company(profile["size"]) if profile["size"] else None,
        recycled_at=NOW - timedelta(days=recycled) if recycled is not None else None,
    )
    facts = []
    for type_, days, path, form, points, expires in events:
        properties = {"form": form} if type_ == "form_submit" else {"path": path}
        if type_ == engine.ADJUSTMENT:
            properties = {"points": points, "expires": (NOW + timedelta(days=expires)).timestamp() if expires else None}
        occurred = NOW - timedelta(days=days)
        Event.objects.create(
            source=source,
            client_id=f"g{next(_n)}",
            contact=contact,
            type=type_,
            properties=properties,
            occurred_at=occurred,
            received_at=NOW,
        )
        kind = Form.objects.filter(slug=form).values_list("kind", flat=True).first() if type_ == "form_submit" else None
        facts.append(engine.EventFacts(type_, occurred, properties, kind))
    fields = {
        "job_title": contact.job_title,
        "budget": contact.budget,
        "channel": contact.channel,
        "company_size": profile["size"],
        "email_domain": profile["domain"],
        "profile.team": profile["team"],
    }
    return contact, facts, fields


def _agrees(contact: Contact, expected: engine.Scored) -> None:
    _stored_as(reloaded(contact), expected)


def _stored_as(contact: Contact | Score, expected: engine.Scored) -> None:
    """A contact's live score (or a score row) is the definition's, within float noise."""
    assert contact.fit_score == expected.fit
    assert abs(contact.engagement_score - expected.engagement) < 0.015
    assert abs(contact.score - expected.score) <= (1 if _near_half(expected.fit + expected.engagement) else 0)
    assert contact.grade == expected.grade
    assert contact.trend == expected.trend
    assert [(e["rule"], e["kind"], e["events"]) for e in contact.breakdown] == [
        (e["rule"], e["kind"], e["events"]) for e in expected.breakdown
    ]
    for got, want in zip(contact.breakdown, expected.breakdown, strict=True):
        assert abs(got["points"] - want["points"]) < 0.015


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(criteria=criteria, events=events, profile=profiles, recycled=st.none() | st.floats(0, 40))
def test_sql_and_python_agree(db, criteria, events, profile, recycled):
    contact, facts, fields = _contact_with(events, profile, recycled)
    expected = engine.score(criteria, fields, facts, now=NOW, recycled_at=contact.recycled_at)
    rows = services.rescore(contact_ids=[contact.pk], criteria=criteria, now=NOW)
    _agrees(contact, expected)
    assert rows.contacts == 1


# A contact scored now, and an instant ``elapsed`` days later.
LATER = {
    "criteria": criteria,
    "events": events,
    "profile": profiles,
    "recycled": st.none() | st.floats(0, 40),
    "elapsed": st.floats(0, 60) | st.sampled_from([0.0, 1 / 24, 1.0]),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**LATER)
def test_the_decay_refresh_gives_what_scoring_from_events_would(db, criteria, events, profile, recycled, elapsed):
    """Scored now, then refreshed ``elapsed`` days later: the score is the definition's at that later instant,
    whether the refresh rescaled the stored sums or (a window passed) scored the contact from its events; and
    what is stored beside it (engagement, breakdown, trend) is the definition's when it was written — the
    refresh writes a score that moved, with its breakdown as of then, and leaves one that did not."""
    contact, facts, fields = _contact_with(events, profile, recycled)
    services.rescore(contact_ids=[contact.pk], criteria=criteria, now=NOW)
    later = NOW + timedelta(days=elapsed)
    services.refresh(criteria=criteria, lo=contact.pk, hi=contact.pk, now=later)
    expected = engine.score(criteria, fields, facts, now=later, recycled_at=contact.recycled_at)
    stored = reloaded(contact)
    assert abs(stored.score - expected.score) <= (1 if _near_half(expected.fit + expected.engagement) else 0)
    assert stored.scored_at in (NOW, later)
    _agrees(contact, engine.score(criteria, fields, facts, now=stored.scored_at, recycled_at=contact.recycled_at))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    **LATER,
    points=st.lists(st.integers(-30, 50).map(float), min_size=5, max_size=5),
    caps=st.lists(st.none() | st.integers(1, 40).map(float), min_size=5, max_size=5),
    fits=st.none() | st.lists(fit, max_size=4).map(tuple),
    fit_points=st.lists(st.integers(-20, 20).map(float), min_size=4, max_size=4),
)
def test_a_version_scored_from_the_live_facts_gives_what_scoring_from_events_would(
    db, criteria, events, profile, recycled, elapsed, points, caps, fits, fit_points
):
    """Scored under one version now; a version whose rules match the same events (other points, caps, names and
    fit rules) scored ``elapsed`` days later: from the stored facts where they carry, else (a window passed, an
    adjustment expired) from the events, never both, and either way what the definition gives then. Its fit rules
    are others (``fits``) or the same with other points and names (None): then their stored matches carry too."""
    contact, facts, fields = _contact_with(events, profile, recycled)
    services.rescore(contact_ids=[contact.pk], criteria=criteria, now=NOW)
    changed = tuple(
        replace(rule, name=f"{rule.name} (new)", points=p, cap=c)
        for rule, p, c in zip(criteria.behaviour, points, caps, strict=False)
    )
    if fits is None:
        fits = tuple(
            replace(r, name=f"{r.name} (new)", points=p) for r, p in zip(criteria.fit, fit_points, strict=False)
        )
    other = replace(criteria, version=2, behaviour=changed, fit=fits)
    assert sql.reusable(criteria, other)
    later = NOW + timedelta(days=elapsed)
    with connection.cursor() as cursor:
        text, params = sql.carried(other, matches_carry=sql.same_matches(criteria, other))
        cursor.execute(text, params | {"lo": contact.pk, "hi": contact.pk, "now": later, "source": criteria.version})
        rest, carried = cursor.fetchone()
        assert (rest, carried) in (([], 1), ([contact.pk], 0))  # either its facts carried or it is left to its events
        if elapsed == 0:
            assert carried  # nothing has changed since: they carry
        services.scored_range(cursor, other, lo=contact.pk, hi=contact.pk, now=later, source=criteria, write=True)
    row = Score.objects.annotate(breakdown=Breakdown("")).get(version=2, contact=contact)
    expected = engine.score(other, fields, facts, now=later, recycled_at=contact.recycled_at)
    _stored_as(row, expected)
    assert abs(row.promotion_score - expected.promotion_score) <= 1
    assert row.facts_at <= later


def test_a_version_whose_fit_rules_match_alike_takes_each_score_s_matches_as_stored(db):
    """Its fit rules differ from the live ones in points only: a contact's matches are read from its score, not
    from its fields again (a fifth of a publish's pass). Shown by a field changed behind scoring's back, which a
    rescore of the contact would see."""
    title = engine.Fit(name="Head", field="job_title", operator="contains", points=10, values=("head",))
    live = engine.Criteria(version=1, behaviour=(), fit=(title,), half_life_days=30)
    contact = Contact.objects.create(email="ann@example.com", job_title="Head of Data")
    services.rescore(contact_ids=[contact.pk], criteria=live, now=NOW)
    Contact.objects.filter(pk=contact.pk).update(job_title="Engineer")  # no rescore asked for
    alike = replace(live, version=2, fit=(replace(title, points=25),))
    other = replace(live, version=3, fit=(replace(title, values=("head", "vp"), points=25),))
    assert sql.same_matches(live, alike) and not sql.same_matches(live, other)

    with connection.cursor() as cursor:
        for version in (alike, other):
            services.scored_range(cursor, version, lo=contact.pk, hi=contact.pk, now=NOW, source=live, write=True)

    scores = dict(Score.objects.filter(contact=contact).values_list("version", "fit_score"))
    assert scores == {1: 10, 2: 25, 3: 0}  # v3's rules read the fields: the title no longer matches


def test_versions_carry_only_between_rules_that_match_the_same_events():
    rule = engine.Behaviour(
        name="Pricing", event_type="page_view", points=5, property_key="path", operator="contains", values=("pricing",)
    )
    live = engine.Criteria(version=1, behaviour=(rule,), fit=(), half_life_days=30)
    assert sql.reusable(live, replace(live, version=2, behaviour=(replace(rule, points=9, cap=20, name="P"),)))
    assert not sql.reusable(live, replace(live, behaviour=(replace(rule, values=("price",)),)))
    assert not sql.reusable(live, replace(live, behaviour=(rule, rule)))
    assert not sql.reusable(live, replace(live, half_life_days=7))


def _near_half(x: float) -> bool:
    """Within float noise of a .5 boundary, where the two sums' different order may round apart."""
    return abs((x % 1) - 0.5) < 1e-6


def test_a_score_too_large_for_its_column_is_held_at_the_limit_on_every_path(add_event):
    """A rule of a million points (the most the API takes), uncapped and never decaying, and a contact with 2,200
    of its events: the score is 2.2 billion, past what a score holds. Scored from the events, refreshed, and
    carried into a new version, it is held at ``engine.SCORE_LIMIT`` as the definition holds it; before, each
    statement failed ("integer out of range"), and with it every contact scored in the same statement."""
    rule = engine.Behaviour(name="Visit", event_type="page_view", points=1_000_000, cap=None)
    criteria = engine.Criteria(version=1, behaviour=(rule,), fit=(), half_life_days=0)
    contact, other = Contact.objects.create(email="flood@example.com"), Contact.objects.create(email="o@example.com")
    for _ in range(2_200):
        add_event(contact, "page_view")
    add_event(other, "page_view")
    facts = [engine.EventFacts("page_view", NOW, {}, None)] * 2_200
    expected = engine.score(criteria, {}, facts, now=NOW)
    assert expected.score == expected.promotion_score == engine.SCORE_LIMIT

    services.rescore(contact_ids=[contact.pk, other.pk], criteria=criteria, now=NOW)
    assert reloaded(contact).score == engine.SCORE_LIMIT
    assert reloaded(other).score == 1_000_000  # scored in the same statement
    services.refresh(criteria=criteria, lo=contact.pk, hi=other.pk, now=NOW + timedelta(hours=1))
    assert reloaded(contact).score == engine.SCORE_LIMIT
    negated = replace(criteria, version=2, behaviour=(replace(rule, points=-1_000_000),))
    with connection.cursor() as cursor:
        services.scored_range(cursor, negated, lo=contact.pk, hi=contact.pk, now=NOW, source=criteria, write=True)
    assert Score.objects.get(version=2, contact=contact).score == -engine.SCORE_LIMIT
