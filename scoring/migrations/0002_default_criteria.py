from __future__ import annotations

from django.db import migrations

# PRODUCT.md §4: version 1, sensible for a B2B company, all editable.
BEHAVIOUR = [
    # name, event type, property key, operator, values, points, cap
    ("Page view", "page_view", "", "", [], 1, 20),
    ("Pricing or product page", "page_view", "path", "starts_with", ["/pricing", "/product"], 5, 30),
    ("Email open", "email_open", "", "", [], 1, 10),
    ("Email click", "email_click", "", "", [], 3, 30),
    ("Content download", "form_submit", "form_kind", "equals", ["content"], 10, 30),
    ("Webinar sign-up", "form_submit", "form_kind", "equals", ["webinar"], 15, 30),
    ("Demo or contact request", "form_submit", "form_kind", "in_list", ["demo_request", "contact_request"], 40, None),
    ("Unsubscribed", "email_unsubscribe", "", "", [], -20, None),
    ("Email bounced", "email_bounce", "", "", [], -10, None),
]
FIT = [
    # name, field, operator, values, points
    ("Senior job title", "job_title", "contains", ["director", "head", "vp", "chief", "owner", "founder"], 15),
    ("Company of 50+", "company_size", "gte", [50], 10),
    ("Decision maker", "authority", "equals", ["decision maker"], 15),
    ("Has a budget", "budget", "is_set", [], 10),
    ("Free-mail address", "email_domain", "in_list", ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com"], -10),
]


def create_version_1(apps, schema_editor):
    Version = apps.get_model("scoring", "CriteriaVersion")
    if Version.objects.exists():
        return
    version = Version.objects.create(number=1, status="active")
    for position, (name, event_type, key, op, values, points, cap) in enumerate(BEHAVIOUR):
        version.behaviour_rules.create(
            position=position, name=name, event_type=event_type, property_key=key, operator=op, values=values,
            points=points, cap=cap,
        )
    for position, (name, field, op, values, points) in enumerate(FIT):
        version.fit_rules.create(position=position, name=name, field=field, operator=op, values=values, points=points)


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]
    operations = [migrations.RunPython(create_version_1, migrations.RunPython.noop)]
