from __future__ import annotations

import pytest

from crm.models import Contact
from tests.scoring.conftest import company, points


@pytest.mark.parametrize(
    ("event_type", "properties", "rule", "expected"),
    [
        ("page_view", {"path": "/blog"}, "Page view", 1),
        ("page_view", {"path": "/pricing/enterprise"}, "Pricing or product page", 5),
        ("page_view", {"path": "/product"}, "Pricing or product page", 5),
        ("email_open", {}, "Email open", 1),
        ("email_click", {}, "Email click", 3),
        ("form_submit", {"form": "ebook"}, "Content download", 10),
        ("form_submit", {"form": "whitepaper"}, "Content download", 10),
        ("form_submit", {"form": "webinar"}, "Webinar sign-up", 15),
        ("form_submit", {"form": "demo"}, "Demo or contact request", 40),
        ("form_submit", {"form": "contact"}, "Demo or contact request", 40),
        ("email_unsubscribe", {}, "Unsubscribed", -20),
        ("email_bounce", {}, "Email bounced", -10),
    ],
)
def test_each_default_behaviour_rule_gives_its_points(
    contact, add_event, rescore, event_type, properties, rule, expected
):
    add_event(contact, event_type, **properties)

    assert points(rescore(contact), rule) == expected


def test_a_pricing_page_view_matches_two_rules(contact, add_event, rescore):
    add_event(contact, "page_view", path="/pricing")

    scored = rescore(contact)

    assert (points(scored, "Page view"), points(scored, "Pricing or product page")) == (1, 5)
    assert scored.engagement_score == 6


def test_a_newsletter_form_and_an_unknown_form_score_nothing(contact, add_event, rescore):
    add_event(contact, "form_submit", form="newsletter")
    add_event(contact, "form_submit", form="price-calculator")

    assert rescore(contact).engagement_score == 0


@pytest.mark.parametrize(("views", "expected"), [(19, 19), (20, 20), (21, 20), (40, 20)])
def test_the_cap_bounds_a_rules_share(contact, add_event, rescore, views, expected):
    for _ in range(views):
        add_event(contact, "page_view", path="/")

    assert points(rescore(contact), "Page view") == expected


def test_decay_halves_points_every_half_life(contact, add_event, rescore):
    add_event(contact, "email_click", days_ago=30)
    add_event(contact, "form_submit", days_ago=60, form="demo")

    scored = rescore(contact)

    assert points(scored, "Email click") == 1.5
    assert points(scored, "Demo or contact request") == 10


def test_decay_comes_before_the_cap(contact, add_event, rescore):
    for _ in range(30):  # 30 points of views, a half-life old: 15 after decay, under the cap of 20
        add_event(contact, "page_view", days_ago=30, path="/")

    assert points(rescore(contact), "Page view") == 15


def test_a_negative_rules_cap_bounds_its_magnitude(contact, add_event, rescore):
    from scoring.models import BehaviourRule

    BehaviourRule.objects.filter(name="Email bounced").update(cap=15)
    for _ in range(3):
        add_event(contact, "email_bounce")

    assert points(rescore(contact), "Email bounced") == -15


def test_scores_are_not_floored_at_zero(contact, add_event, rescore):
    add_event(contact, "email_unsubscribe")
    add_event(contact, "page_view", path="/")

    assert rescore(contact).score == -19


@pytest.mark.parametrize(
    ("fields", "size", "rule", "expected"),
    [
        ({"job_title": "Head of Data"}, None, "Senior job title", 15),
        ({"job_title": "VP Sales"}, None, "Senior job title", 15),
        ({"job_title": "Co-Founder"}, None, "Senior job title", 15),
        ({"job_title": "Engineer"}, None, "Senior job title", None),
        ({}, 50, "Company of 50+", 10),
        ({}, 49, "Company of 50+", None),
        ({"authority": "Decision Maker"}, None, "Decision maker", 15),
        ({"authority": "influencer"}, None, "Decision maker", None),
        ({"budget": "10k"}, None, "Has a budget", 10),
        ({"budget": ""}, None, "Has a budget", None),
        ({"email": "ada@gmail.com"}, None, "Free-mail address", -10),
        ({"email": "ada@example.com"}, None, "Free-mail address", None),
    ],
)
def test_each_default_fit_rule(db, rescore, fields, size, rule, expected):
    contact = Contact.objects.create(
        **{"email": "someone@example.com", **fields}, company=company(size) if size is not None else None
    )

    assert points(rescore(contact), rule) == expected


@pytest.mark.parametrize(
    ("title", "size", "authority", "grade"),
    [("Head", 50, "decision maker", "A"), ("Head", 50, "", "B"), ("Head", None, "", "B"), ("", None, "", "C")],
)
def test_fit_maps_to_a_grade(db, rescore, title, size, authority, grade):
    contact = Contact.objects.create(
        email="x@example.com", job_title=title, authority=authority, company=company(size) if size else None
    )

    assert rescore(contact).grade == grade


def test_free_mail_alone_is_grade_d(db, rescore):
    assert rescore(Contact.objects.create(email="x@gmail.com")).grade == "D"


def test_the_breakdown_adds_up_to_the_score(contact, add_event, rescore):
    contact.job_title = "Director"
    contact.save()
    for days in (1, 3, 7, 12, 33, 45, 80):
        add_event(contact, "page_view", days_ago=days, path="/pricing")
        add_event(contact, "email_open", days_ago=days + 0.3)
    add_event(contact, "form_submit", days_ago=9, form="webinar")

    scored = rescore(contact)

    total = sum(entry["points"] for entry in scored.breakdown)
    assert round(total, 6) == round(scored.fit_score + scored.engagement_score, 6)
    assert scored.score == int(total + 0.5)


def test_trend_compares_the_last_fortnight_with_the_one_before(contact, add_event, rescore):
    for _ in range(5):
        add_event(contact, "email_click", days_ago=3)
    assert rescore(contact).trend == "rising"

    for _ in range(10):
        add_event(contact, "email_click", days_ago=20)
    assert rescore(contact).trend == "cooling"
