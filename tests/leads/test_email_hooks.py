"""The email tools' own webhooks, with their documented example payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crm.models import Contact
from leads.models import ApiKey, Event, Source

SENDGRID = [
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "processed",
        "category": "cat facebook",
        "sg_event_id": "sg_event_id_processed",
        "sg_message_id": "m1",
    },
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "event": "open",
        "category": "cat facebook",
        "sg_event_id": "sg_event_id_open",
        "sg_message_id": "m1",
        "useragent": "Mozilla/4.0",
        "ip": "255.255.255.255",
    },
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "event": "click",
        "category": "cat facebook",
        "sg_event_id": "sg_event_id_click",
        "sg_message_id": "m1",
        "url": "https://sendgrid.com",
    },
    {
        "email": "bounce@test.com",
        "timestamp": 1513299569,
        "event": "bounce",
        "reason": "500 unknown recipient",
        "status": "5.0.0",
        "sg_event_id": "sg_event_id_bounce",
        "sg_message_id": "m2",
    },
    {
        "email": "spam@test.com",
        "timestamp": 1513299569,
        "event": "spamreport",
        "sg_event_id": "sg_event_id_spam",
        "sg_message_id": "m3",
    },
]
MAILGUN = {
    "signature": {
        "timestamp": "1529006854",
        "token": "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
        "signature": "d2271d12299f6592d9d44cd9d250f0704e4674c30d79d07c47a66f95ce71cf55",
    },
    "event-data": {
        "event": "opened",
        "timestamp": 1529006854.329574,
        "id": "DACSsAdVSeGpLid7TN03WA",
        "recipient": "alice@example.com",
        "tags": ["my_tag_1", "my_tag_2"],
        "message": {"headers": {"message-id": "20130503182626.18666.16540@example.com"}},
    },
}
POSTMARK_OPEN = {
    "RecordType": "Open",
    "MessageStream": "outbound",
    "FirstOpen": True,
    "Platform": "WebMail",
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "ReceivedAt": "2019-11-05T16:33:54.9070259Z",
    "Tag": "welcome-email",
    "Recipient": "john@example.com",
}
POSTMARK_BOUNCE = {
    "RecordType": "Bounce",
    "ID": 4323372036854775807,
    "Type": "HardBounce",
    "TypeCode": 1,
    "Name": "Hard bounce",
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "Description": "The server was unable to deliver your message.",
    "Email": "john@example.com",
    "From": "sender@example.com",
    "BouncedAt": "2019-11-05T16:33:54.9070259Z",
}


@pytest.fixture
def mailer(db):
    source = Source.objects.create(name="mailer", kind=Source.Kind.EMAIL)
    return source, ApiKey.issue(source=source, scope=ApiKey.Scope.INGEST)[1]


def hook(client, provider, key, body, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(f"/api/v1/hooks/{provider}?key={key}", raw, content_type="application/json", **headers)


def test_sendgrid_events_become_opens_clicks_bounces_and_unsubscribes(client, mailer):
    response = hook(client, "sendgrid", mailer[1], SENDGRID)

    assert response.status_code == 202
    assert response.json() == {"accepted": 4, "duplicates": 0, "ignored": 1}
    kinds = dict(Event.objects.values_list("client_id", "type"))
    assert kinds == {
        "sg_event_id_open": "email_open",
        "sg_event_id_click": "email_click",
        "sg_event_id_bounce": "email_bounce",
        "sg_event_id_spam": "email_unsubscribe",
    }
    assert Event.objects.get(client_id="sg_event_id_click").properties["link"] == "https://sendgrid.com"
    assert Contact.objects.scored().get(email="spam@test.com").email_opt_out


def test_a_redelivery_is_a_duplicate(client, mailer):
    hook(client, "sendgrid", mailer[1], SENDGRID)

    assert hook(client, "sendgrid", mailer[1], SENDGRID).json() == {"accepted": 0, "duplicates": 4, "ignored": 1}
    assert Event.objects.count() == 4


def test_mailgun_and_postmark_payloads(client, mailer):
    assert hook(client, "mailgun", mailer[1], MAILGUN).json()["accepted"] == 1
    assert hook(client, "postmark", mailer[1], POSTMARK_OPEN).json()["accepted"] == 1
    assert hook(client, "postmark", mailer[1], POSTMARK_BOUNCE).json()["accepted"] == 1

    opened = Event.objects.get(client_id="DACSsAdVSeGpLid7TN03WA")
    assert (opened.type, opened.contact.email, opened.properties["campaign"]) == (
        "email_open",
        "alice@example.com",
        "my_tag_1",
    )
    assert Event.objects.get(type="email_bounce").contact.email == "john@example.com"
    assert Event.objects.filter(contact__email="john@example.com", type="email_open").exists()


def test_a_signed_sendgrid_hook_is_checked_with_the_verification_key(client, mailer):
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    Source.objects.filter(pk=mailer[0].pk).update(signing_secret=base64.b64encode(public).decode())
    raw, timestamp = json.dumps(SENDGRID).encode(), str(int(time.time()))
    signature = base64.b64encode(private.sign(timestamp.encode() + raw, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {"HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": timestamp}

    assert hook(client, "sendgrid", mailer[1], raw, **headers).status_code == 401  # no signature
    forged = base64.b64encode(private.sign(b"other", ec.ECDSA(hashes.SHA256()))).decode()
    assert (
        hook(
            client, "sendgrid", mailer[1], raw, HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE=forged, **headers
        ).status_code
        == 401
    )
    assert not Event.objects.exists()
    ok = hook(client, "sendgrid", mailer[1], raw, HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE=signature, **headers)
    assert ok.status_code == 202 and ok.json()["accepted"] == 4


def test_a_signed_mailgun_hook_is_checked_with_the_signing_key(client, mailer):
    Source.objects.filter(pk=mailer[0].pk).update(signing_secret="key-signing")
    timestamp, token = str(int(time.time())), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    good = hmac.new(b"key-signing", (timestamp + token).encode(), hashlib.sha256).hexdigest()

    assert hook(client, "mailgun", mailer[1], MAILGUN).status_code == 401  # the docs' example, another key
    body = MAILGUN | {"signature": {"timestamp": timestamp, "token": token, "signature": good}}
    assert hook(client, "mailgun", mailer[1], body).status_code == 202


def test_a_postmark_hook_needs_the_basic_auth_password_when_the_source_has_one(client, mailer):
    Source.objects.filter(pk=mailer[0].pk).update(signing_secret="s3cret")
    basic = lambda password: "Basic " + base64.b64encode(f"postmark:{password}".encode()).decode()  # noqa: E731

    assert hook(client, "postmark", mailer[1], POSTMARK_OPEN, HTTP_AUTHORIZATION=basic("wrong")).status_code == 401
    assert hook(client, "postmark", mailer[1], POSTMARK_OPEN, HTTP_AUTHORIZATION=basic("s3cret")).status_code == 202


@pytest.mark.parametrize(
    ("provider", "body", "status"),
    [("sendgrid", {"event": "open"}, 400), ("mailgun", [], 400), ("postmark", {"x": 1}, 400), ("nope", [], 400)],
)
def test_a_payload_of_the_wrong_shape_is_a_400(client, mailer, provider, body, status):
    assert hook(client, provider, mailer[1], body).status_code == status


def test_a_hook_needs_an_ingest_key(client, mailer, db):
    read = ApiKey.issue(source=mailer[0], scope=ApiKey.Scope.READ)[1]

    assert hook(client, "sendgrid", "bk_nope", SENDGRID).status_code == 401
    assert hook(client, "sendgrid", read, SENDGRID).status_code == 403
