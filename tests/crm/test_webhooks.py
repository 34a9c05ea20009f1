"""Outgoing webhooks against a real receiver: signatures, retries, order, rollback, 410, SSRF, Slack."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.utils import timezone

from crm import webhooks
from crm.lifecycle import Actor, move
from crm.models import Contact, Stage, WebhookDelivery, WebhookEndpoint
from handoff import services as handoff
from tests.scores import make_contact, reloaded

Event = WebhookEndpoint.Event


class Receiver:
    """A small HTTP server: records each request, answers with the next status of ``script`` (then 200)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    {
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                        "client_port": self.client_address[1],
                    }
                )
                receiver.arrived.set()
                receiver.hold.wait(30)
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the listen backlog: many senders at once
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    r = Receiver()
    yield r
    r.hold.set()
    r.server.shutdown()


def endpoint_for(receiver, *events, kind="webhook") -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        name="CRM sync",
        kind=kind,
        url=receiver.url,
        events=list(events or Event.values),
        secret_salt=webhooks.new_salt(),
    )


def verify(secret: str, request: dict) -> bool:
    """Standard Webhooks, as a receiver would check it."""
    h = request["headers"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + request["body"]
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s.split(",", 1)[1]) for s in h["webhook-signature"].split())


def later(minutes: float) -> timezone.datetime:
    return timezone.now() + timedelta(minutes=minutes)


def test_a_stage_change_is_delivered_signed_in_the_documented_shape(receiver, marketer_mia):
    endpoint = endpoint_for(receiver, Event.STAGE_CHANGED)
    grace = make_contact(email="grace@example.com", first_name="Grace", score=45)

    move(contact_id=grace.pk, to=Stage.MQL, by=Actor.of(marketer_mia), reason="Asked for pricing")
    assert webhooks.deliver_due() == 1

    (request,) = receiver.requests
    assert verify(webhooks.secret_of(endpoint), request)
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["webhook-id"].startswith("msg_")
    assert abs(int(request["headers"]["webhook-timestamp"]) - timezone.now().timestamp()) < 60
    body = json.loads(request["body"])
    assert body["type"] == "contact.stage_changed"
    assert body["data"]["contact"]["email"] == "grace@example.com" and body["data"]["contact"]["stage"] == "mql"
    assert "stage_history" not in body["data"]["contact"]
    assert body["data"]["change"] | {"at": None} == {
        "from": "lead",
        "to": "mql",
        "at": None,
        "by": "Mia Marketer",
        "reason": "Asked for pricing",
        "score": 45,
    }
    assert WebhookDelivery.objects.get().status == "delivered"


def test_a_signature_made_with_another_secret_does_not_verify(receiver, marketer_mia):
    endpoint_for(receiver, Event.STAGE_CHANGED)
    grace = Contact.objects.create(email="grace@example.com")
    move(contact_id=grace.pk, to=Stage.MQL, by=Actor.of(marketer_mia))
    webhooks.deliver_due()

    other = WebhookEndpoint(secret_salt=webhooks.new_salt())
    assert not verify(webhooks.secret_of(other), receiver.requests[0])


def test_a_failing_receiver_gets_the_event_once_more_after_each_failure_with_the_same_id(receiver, marketer_mia):
    endpoint_for(receiver, Event.STAGE_CHANGED)
    receiver.script = [500, 503, 502]
    grace = Contact.objects.create(email="grace@example.com")
    move(contact_id=grace.pk, to=Stage.MQL, by=Actor.of(marketer_mia))

    for minutes in (0, 1, 60, 600, 6000):
        webhooks.deliver_due(now=later(minutes))

    assert len(receiver.requests) == 4
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 4, 200)


def test_nothing_is_resent_before_its_backoff_has_passed(receiver, marketer_mia):
    endpoint_for(receiver, Event.STAGE_CHANGED)
    receiver.script = [500]
    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))

    webhooks.deliver_due()
    webhooks.deliver_due()

    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().next_attempt_at > timezone.now()


def test_after_three_days_of_failures_it_gives_up_and_the_endpoint_is_disabled(receiver, marketer_mia, admin_ada):
    endpoint = endpoint_for(receiver, Event.STAGE_CHANGED)
    receiver.script = [500] * 100
    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))

    webhooks.deliver_due()
    webhooks.deliver_due(now=later(3 * 24 * 60 + 1))

    assert WebhookDelivery.objects.get().status == "failed"
    endpoint = reloaded(endpoint)
    assert not endpoint.enabled and "3 days" in endpoint.disabled_reason


def test_a_410_disables_the_endpoint(receiver, marketer_mia):
    endpoint = endpoint_for(receiver, Event.STAGE_CHANGED)
    receiver.script = [410]
    move(contact_id=Contact.objects.create(email="g0@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))
    webhooks.deliver_due()

    move(contact_id=Contact.objects.create(email="g1@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))
    webhooks.deliver_due(now=later(60))

    endpoint = reloaded(endpoint)
    assert not endpoint.enabled and "410" in endpoint.disabled_reason
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get(status="failed").error.startswith("The receiver answered 410 Gone")


def test_a_rolled_back_change_sends_nothing(receiver, marketer_mia):
    endpoint_for(receiver)
    grace = Contact.objects.create(email="grace@example.com")

    with pytest.raises(RuntimeError), transaction.atomic():
        move(contact_id=grace.pk, to=Stage.MQL, by=Actor.of(marketer_mia))
        raise RuntimeError("the change failed after the move")

    assert not WebhookDelivery.objects.exists()
    assert webhooks.deliver_due() == 0 and receiver.requests == []


def test_a_receiver_sees_created_before_claimed_even_when_created_had_to_be_retried(receiver, rep_sam):
    endpoint_for(receiver, Event.HANDOFF_CREATED, Event.HANDOFF_CLAIMED)
    receiver.script = [500]
    lead = make_contact(email="sql@example.com", stage=Stage.SQL, score=80)
    handoff.enqueue(contact_ids=[lead.pk], sent_by="scoring v1", sla=handoff.Sla(60, 120), requested={})
    entry = lead.queue_entries.get()

    webhooks.deliver_due()  # created fails
    handoff.claim(entry_id=entry.pk, rep=rep_sam)
    webhooks.deliver_due()  # claimed must wait behind created
    assert [b["type"] for b in receiver.bodies()] == ["handoff.created"]

    webhooks.deliver_due(now=later(5))
    assert [b["type"] for b in receiver.bodies()] == ["handoff.created", "handoff.created", "handoff.claimed"]
    claimed = receiver.bodies()[-1]["data"]
    assert claimed["handoff"]["owner"] == "sam@baton.test" and claimed["contact"]["owner"] == "sam@baton.test"


def test_only_subscribed_enabled_endpoints_get_deliveries(receiver, marketer_mia):
    endpoint_for(receiver, Event.HANDOFF_CREATED)
    off = endpoint_for(receiver, Event.STAGE_CHANGED)
    off.enabled = False
    off.save()

    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))

    assert not WebhookDelivery.objects.exists()


def test_an_sla_breach_is_told(receiver, db):
    endpoint_for(receiver, Event.HANDOFF_SLA_BREACHED)
    lead = make_contact(email="sql@example.com", stage=Stage.SQL, score=80)
    handoff.enqueue(contact_ids=[lead.pk], sent_by="scoring v1", sla=handoff.Sla(60, 120), requested={})

    handoff.enforce_sla(now=later(61))
    webhooks.deliver_due()

    (body,) = receiver.bodies()
    assert body["type"] == "handoff.sla_breached" and body["data"]["breach"]["kind"] == "unclaimed"


def test_slack_gets_a_readable_message(receiver, marketer_mia, settings):
    settings.BASE_URL = "https://baton.example.com"
    endpoint_for(receiver, Event.STAGE_CHANGED, kind="slack")
    breakdown = [{"rule": "Demo or contact request", "kind": "behaviour", "events": 1, "points": 40.0}]
    ada = make_contact(email="ada@example.com", first_name="Ada", last_name="Lovelace", score=82, breakdown=breakdown)

    move(contact_id=ada.pk, to=Stage.SQL, by=Actor.of(marketer_mia))
    webhooks.deliver_due()

    (body,) = receiver.bodies()
    assert body == {
        "text": f"*Ada Lovelace* is now SQL — score 82. Why: Demo or contact request +40\n"
        f"<https://baton.example.com/leads/{ada.pk}/|Open in Baton>"
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/",
        "https://169.254.169.254/latest",
        "https://localhost/",
        "https://[::1]/",
        "ftp://example.com/",
        "https://nonexistent.invalid/",
    ],
)
def test_private_local_and_odd_addresses_are_refused_in_production(settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE = False

    with pytest.raises(webhooks.WebhookRefused):
        webhooks.check_url(url)


def test_replay_sends_a_failed_delivery_again_with_its_id(receiver, marketer_mia):
    endpoint = endpoint_for(receiver, Event.STAGE_CHANGED)
    receiver.script = [410]
    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))
    webhooks.deliver_due()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=True)

    assert webhooks.replay(endpoint=endpoint) == 1
    webhooks.deliver_due()

    assert [r["headers"]["webhook-id"] for r in receiver.requests][0] == receiver.requests[1]["headers"]["webhook-id"]
    assert WebhookDelivery.objects.get().status == "delivered"


@pytest.mark.django_db(transaction=True)
def test_a_delivery_whose_worker_is_killed_mid_request_is_delivered_later(receiver, marketer_mia, celery_worker):
    import os
    import signal

    import psutil

    from tests.conftest import wait_for

    endpoint_for(receiver, Event.STAGE_CHANGED)
    receiver.hold.clear()  # the receiver takes the request and does not answer yet
    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))
    assert receiver.arrived.wait(20)  # the worker, nudged on commit, is sending
    sender_port = receiver.requests[0]["client_port"]
    sender = next(c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == sender_port)

    os.kill(sender, signal.SIGKILL)  # the worker process in the middle of the request
    receiver.hold.set()

    delivered = wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").first(), timeout=30)
    assert len(receiver.requests) >= 2
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {delivered.message_id}
    assert celery_worker.poll() is None


def test_admins_are_emailed_when_an_endpoint_is_disabled(admin_ada, marketer_mia):
    from django.core import mail

    assert webhooks.email_admins(subject="Webhook endpoint “CRM sync” disabled", body="…") == 1
    assert mail.outbox[0].to == ["ada@baton.test"]


def test_nothing_goes_to_an_endpoint_disabled_after_its_deliveries_were_queued(receiver, marketer_mia):
    endpoint = endpoint_for(receiver, Event.STAGE_CHANGED)
    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)

    assert webhooks.deliver_due() == 0
    assert receiver.requests == []
    assert WebhookDelivery.objects.get().status == "pending"  # it waits for the endpoint to be enabled again


def test_an_address_that_turns_private_is_not_sent_to(receiver, marketer_mia, settings):
    endpoint_for(receiver, Event.STAGE_CHANGED)  # saved while allowed (development)
    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))
    settings.WEBHOOKS_ALLOW_PRIVATE = False

    webhooks.deliver_due()

    assert receiver.requests == []
    assert "only to this machine, in development" in WebhookDelivery.objects.get().error


@pytest.mark.django_db(transaction=True)
def test_two_workers_sending_at_once_send_each_delivery_once(receiver, marketer_mia):
    from django.db import connection

    endpoint_for(receiver, Event.STAGE_CHANGED)
    contacts = Contact.objects.bulk_create([Contact(email=f"c{i}@example.com") for i in range(60)])
    with transaction.atomic():  # not due yet, so that a worker nudged on commit finds nothing
        for c in contacts:
            move(contact_id=c.pk, to=Stage.MQL, by=Actor.of(marketer_mia))
        WebhookDelivery.objects.update(next_attempt_at=later(60))
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())

    def worker():
        webhooks.deliver_due(limit=7)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    from tests.conftest import wait_for

    wait_for(lambda: not WebhookDelivery.objects.filter(status="pending").exists())  # (a nudged worker may help)
    ids = [r["headers"]["webhook-id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 60


@pytest.mark.django_db(transaction=True)
def test_changes_in_quick_succession_are_each_delivered_by_the_worker_without_waiting_for_beat(
    receiver, marketer_mia, celery_worker
):
    from tests.conftest import wait_for

    endpoint_for(receiver, Event.STAGE_CHANGED)
    for i in range(5):
        contact = Contact.objects.create(email=f"q{i}@example.com")
        move(contact_id=contact.pk, to=Stage.MQL, by=Actor.of(marketer_mia))
        wait_for(lambda c=contact: WebhookDelivery.objects.filter(contact=c, status="delivered").exists(), timeout=5)


def test_a_replay_of_a_delivery_that_is_not_a_number_replays_nothing(client, admin_ada, receiver, marketer_mia):
    endpoint = endpoint_for(receiver, Event.STAGE_CHANGED)
    receiver.script = [410]
    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))
    webhooks.deliver_due()
    client.force_login(admin_ada)

    client.post(f"/settings/webhooks/{endpoint.pk}/replay", {"delivery": "abc"})

    assert WebhookDelivery.objects.get().status == "failed"


def test_a_rotated_secret_is_shown_once_on_the_answer_and_signs_from_then_on(client, admin_ada, receiver):
    endpoint = endpoint_for(receiver, Event.STAGE_CHANGED)
    client.force_login(admin_ada)

    page = client.post(f"/settings/webhooks/{endpoint.pk}/rotate").content.decode()

    endpoint = reloaded(endpoint)
    assert webhooks.secret_of(endpoint) in page
    assert webhooks.secret_of(endpoint) not in client.get(f"/settings/webhooks/{endpoint.pk}/").content.decode()


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1", "::ffff:10.0.0.1"])
def test_ipv4_private_addresses_inside_ipv6_ones_are_private(address):
    import ipaddress

    assert webhooks._private(ipaddress.ip_address(address))


def test_a_refused_connection_says_so_and_is_retried(settings, marketer_mia):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    WebhookEndpoint.objects.create(
        name="down", url="http://127.0.0.1:9/hook", events=[Event.STAGE_CHANGED], secret_salt=webhooks.new_salt()
    )
    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))

    webhooks.deliver_due()

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.error == "could not connect (refused or unreachable)"


@pytest.fixture
def tls_receiver(tmp_path, settings):
    """The receiver behind TLS, with a certificate for "localhost" that the settings' CA bundle trusts."""
    import datetime as dt
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings.WEBHOOKS_ALLOW_PRIVATE, settings.WEBHOOKS_CA_BUNDLE = True, str(cert_file)
    r = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    r.server.socket = context.wrap_socket(r.server.socket, server_side=True)
    r.url = f"https://localhost:{r.server.server_port}/hook?from=baton"
    yield r
    r.server.shutdown()


def test_an_https_receiver_gets_the_delivery_over_verified_tls(tls_receiver, marketer_mia):
    endpoint_for(tls_receiver, Event.STAGE_CHANGED)
    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))

    webhooks.deliver_due()

    assert WebhookDelivery.objects.get().status == "delivered"
    (request,) = tls_receiver.requests
    assert request["headers"]["host"] == f"localhost:{tls_receiver.server.server_port}"


def test_an_https_receiver_with_a_certificate_nobody_trusts_is_not_sent_to(tls_receiver, marketer_mia, settings):
    settings.WEBHOOKS_CA_BUNDLE = None
    endpoint_for(tls_receiver, Event.STAGE_CHANGED)
    move(contact_id=Contact.objects.create(email="g@example.com").pk, to=Stage.MQL, by=Actor.of(marketer_mia))

    webhooks.deliver_due()

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and "TLS" in delivery.error
