from __future__ import annotations

from crm.models import Contact
from leads.forms import classify
from leads.models import Form
from tests.scoring.conftest import points


def test_classifying_a_form_rescores_those_who_submitted_it(contact, add_event, rescore):
    from crm.models import ContactActivity

    ContactActivity.objects.create(contact=contact)
    form = Form.objects.create(slug="price-calculator", name="price-calculator")  # unclassified: kind other
    add_event(contact, "form_submit", form="price-calculator")
    assert rescore(contact).engagement_score == 0

    marked = classify(form=form, kind=Form.Kind.DEMO_REQUEST)

    assert marked == [contact.pk]
    assert Contact.objects.scored().get(pk=contact.pk).activity.stale_since is not None
    assert points(rescore(contact), "Demo or contact request") == 40


def test_classifying_a_form_nobody_submitted_marks_nobody(db):
    form = Form.objects.create(slug="quiz", name="quiz")

    assert classify(form=form, kind=Form.Kind.CONTENT) == []
    assert Form.objects.get(slug="quiz").kind == "content"
