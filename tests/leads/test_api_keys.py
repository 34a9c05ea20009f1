from __future__ import annotations

import io

import pytest
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


@pytest.mark.parametrize(
    "origin", ["www.example.com/path", "https://www.example.com/path", "example.com", "ftp://x.org"]
)
def test_an_allowed_origin_that_is_not_an_origin_is_refused_saying_how_to_write_it(db, origin):
    from django.core.exceptions import ValidationError
    from django.core.management import CommandError

    source = Source(name="site", allowed_origins=[origin])
    with pytest.raises(ValidationError, match="scheme://host"):
        source.full_clean()
    with pytest.raises(CommandError, match="not an origin"):
        call_command("create_api_key", source="site", scope="site", origin=[origin])


def test_origins_with_a_port_or_a_trailing_slash_are_fine(db):
    Source(
        name="site", allowed_origins=["https://www.example.com", "http://localhost:8000", "https://a.b.co/"]
    ).full_clean()
