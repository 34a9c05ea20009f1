from __future__ import annotations

import io

from django.core.management import call_command

from leads.models import ApiKey, Source


def test_create_api_key_prints_a_working_key_as_its_last_line(client, db):
    out = io.StringIO()
    call_command("create_api_key", source="mailer", scope="ingest", stdout=out, stderr=io.StringIO())
    raw = out.getvalue().strip().splitlines()[-1]

    response = client.post(
        "/api/v1/events",
        data='{"id": "1", "type": "email_open", "email": "a@example.com"}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )

    assert response.status_code == 202
    assert Source.objects.get().name == "mailer"
    assert ApiKey.objects.get().hashed == ApiKey.hash(raw)


def test_create_api_key_sets_a_site_keys_origins(db):
    out = io.StringIO()
    call_command(
        "create_api_key",
        source="website",
        scope="site",
        origin=["https://a.example/"],
        stdout=out,
        stderr=io.StringIO(),
    )

    assert out.getvalue().strip().startswith("pk_")
    assert Source.objects.get().allowed_origins == ["https://a.example"]
