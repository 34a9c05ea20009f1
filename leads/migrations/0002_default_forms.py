from __future__ import annotations

from django.db import migrations

DEFAULT_FORMS = [
    ("newsletter", "Newsletter", "newsletter"),
    ("ebook", "E-book", "content"),
    ("whitepaper", "Whitepaper", "content"),
    ("webinar", "Webinar", "webinar"),
    ("demo", "Demo request", "demo_request"),
    ("contact", "Contact request", "contact_request"),
]


def create_forms(apps, schema_editor):
    Form = apps.get_model("leads", "Form")
    for slug, name, kind in DEFAULT_FORMS:
        Form.objects.get_or_create(slug=slug, defaults={"name": name, "kind": kind})


def remove_forms(apps, schema_editor):
    apps.get_model("leads", "Form").objects.filter(slug__in=[slug for slug, _, _ in DEFAULT_FORMS]).delete()


class Migration(migrations.Migration):
    dependencies = [("leads", "0001_initial")]
    operations = [migrations.RunPython(create_forms, remove_forms)]
