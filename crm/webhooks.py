"""Outgoing webhooks: an outbox written with each change, sent by the worker (Standard Webhooks, API.md).

``emit`` runs inside the transaction of the change it tells about, so there is no change without its
deliveries and no delivery without its change. ``deliver_due`` sends what is due, per endpoint and contact
in the order the changes happened (a receiver sees "created" before "claimed"), holding the rows it sends
with ``FOR UPDATE SKIP LOCKED``: a worker killed mid-delivery leaves them pending, to be sent again later.
Delivery is at least once; receivers dedupe on ``webhook-id``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import redis
import urllib3
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from crm import contact_json
from crm.celery import BROKER_ERRORS, send_soon
from crm.errors import DomainError
from crm.models import Contact, WebhookDelivery, WebhookEndpoint
from crm.redis_client import get_redis

log = logging.getLogger(__name__)
Status = WebhookDelivery.Status
TEST_EVENT = "webhook.test"
DELIVER_TASK = "crm.tasks.deliver_webhooks"
EMAIL_ADMINS_TASK = "crm.tasks.email_admins"
NUDGE_KEY = "webhooks:nudge"
GIVE_UP_AFTER = timedelta(days=3)
TIMEOUT_SECONDS = 10
RESPONSE_READ_LIMIT = 64 * 1024
RESPONSE_KEEP = 2000
BATCH = 100
BUDGET_SECONDS = 60
SENDERS = 16  # concurrent requests per batch


class WebhookRefused(DomainError):
    pass


# --- secrets and signatures --------------------------------------------------------------------------------


def new_salt() -> str:
    return secrets.token_urlsafe(24)


def secret_of(endpoint: WebhookEndpoint) -> str:
    """``whsec_<base64>`` (Standard Webhooks), derived from SECRET_KEY and the endpoint's salt."""
    key = hmac.new(settings.SECRET_KEY.encode(), f"webhook:{endpoint.secret_salt}".encode(), hashlib.sha256)
    return "whsec_" + base64.b64encode(key.digest()[:24]).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed by the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


# --- where we may send ---------------------------------------------------------------------------------------


def check_url(url: str) -> str:
    """Refuse what is not https (http only to loopback, in development) or resolves to a private,
    loopback or link-local address (SSRF), unless WEBHOOKS_ALLOW_PRIVATE. Raises WebhookRefused.
    Returns the checked address to connect to (never resolve the name again: DNS rebinding)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("That is not a web address.") from None
    if parts.scheme not in ("https", "http") or not host:
        raise WebhookRefused("The address must start with https://.")
    try:
        addresses = {ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, port)}
    except (OSError, UnicodeError, ValueError):
        raise WebhookRefused(f"“{host}” does not resolve to an address.") from None
    loopback = all(a.is_loopback for a in addresses)
    if parts.scheme == "http" and not (loopback and settings.WEBHOOKS_ALLOW_PRIVATE):
        raise WebhookRefused("The address must start with https:// (plain http only to this machine, in development).")
    if not settings.WEBHOOKS_ALLOW_PRIVATE and any(_private(a) for a in addresses):
        raise WebhookRefused(f"“{host}” resolves to a private or local address; Baton does not send there.")
    return str(min(addresses, key=lambda a: (a.version, int(a))))  # IPv4 first, then the lowest: stable


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Not a public unicast address, counting IPv4 addresses carried inside IPv6 ones (mapped, 6to4, NAT64…)."""
    if not address.is_global or address.is_multicast:
        return True
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if inner is None and address in NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is None and int(address) >> 32 == 0:  # ::a.b.c.d (IPv4-compatible)
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        return inner is not None and _private(inner)
    return False


# --- the outbox ----------------------------------------------------------------------------------------------


def _listeners(type: str) -> list[int]:
    return list(WebhookEndpoint.objects.filter(enabled=True, events__contains=[type]).values_list("pk", flat=True))


def listening(type: str) -> bool:
    """Whether an enabled endpoint wants ``type``: a caller whose items cost queries asks first."""
    return bool(_listeners(type))


def emit(*, type: str, items: list[tuple[int | None, dict[str, Any]]], at: datetime | None = None) -> int:
    """Queue ``type`` for every enabled endpoint that wants it: one delivery per item (contact id, extra data),
    its body ``{"type", "timestamp", "data": {"contact": …, **extra}}``. Call in the change's transaction.
    Returns how many deliveries were written (none, at the cost of one query, when nobody listens)."""
    if not items:
        return 0
    endpoints = _listeners(type)
    if not endpoints:
        return 0
    at = at or timezone.now()
    ids = {contact_id for contact_id, _ in items if contact_id is not None}
    shapes = {
        c.pk: contact_json.of(c, history=False)
        for c in Contact.objects.scored().filter(pk__in=ids).select_related("company", "owner")
    }
    rows = [
        _delivery(endpoint, type, at, {"contact": shapes.get(contact_id), **extra}, contact_id=contact_id)
        for contact_id, extra in items
        for endpoint in endpoints
    ]
    WebhookDelivery.objects.bulk_create(rows, batch_size=1000)
    transaction.on_commit(nudge)
    return len(rows)


def nudge() -> None:
    """Ask a worker to send what is due now: one waiting request at a time (the task clears the key before it
    looks, so a change committed after that asks again). Never raises: beat's pass every few seconds catches
    up with whatever a lost nudge left."""
    try:
        wanted = get_redis().set(NUDGE_KEY, 1, nx=True, ex=30)
    except BROKER_ERRORS as e:
        log.warning("webhook nudge not sent (%s); beat will catch up", e)
        return
    if wanted:
        send_soon(DELIVER_TASK, what="the webhook nudge (beat will catch up)")


def _delivery(endpoint_id: int, type: str, at: datetime, data: dict, *, contact_id: int | None = None):
    """One unsaved outbox row: due now, with a webhook-id of its own that every attempt will carry."""
    return WebhookDelivery(
        endpoint_id=endpoint_id,
        message_id=f"msg_{uuid.uuid4().hex}",
        type=type,
        contact_id=contact_id,
        body={"type": type, "timestamp": contact_json.iso(at), "data": data},
        created_at=at,
        next_attempt_at=at,
    )


def send_test(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A test event for one endpoint, whatever it subscribes to."""
    delivery = _delivery(endpoint.pk, TEST_EVENT, timezone.now(), {"message": "A test event from Baton."})
    with transaction.atomic():
        delivery.save()
        transaction.on_commit(nudge)
    return delivery


def replay(*, endpoint: WebhookEndpoint, delivery_ids: list[int] | None = None) -> int:
    """Send failed deliveries of ``endpoint`` again (the given ones, or all), keeping their webhook-ids.
    Returns how many. Safe to run twice."""
    now = timezone.now()
    with transaction.atomic():
        failed = WebhookDelivery.objects.filter(endpoint=endpoint, status=Status.FAILED)
        if delivery_ids is not None:
            failed = failed.filter(pk__in=delivery_ids)
        count = failed.update(status=Status.PENDING, attempts=0, created_at=now, next_attempt_at=now, error="")
        transaction.on_commit(nudge)
    return count


# --- sending -------------------------------------------------------------------------------------------------

DUE = """
SELECT d.id FROM crm_webhookdelivery d JOIN crm_webhookendpoint e ON e.id = d.endpoint_id AND e.enabled
WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s
  AND NOT EXISTS (  -- keep each contact's order per endpoint: nothing goes out while an earlier one waits
    SELECT 1 FROM crm_webhookdelivery p
    WHERE p.status = 'pending' AND p.endpoint_id = d.endpoint_id AND p.contact_id = d.contact_id AND p.id < d.id)
ORDER BY d.next_attempt_at, d.id
LIMIT %(limit)s
FOR UPDATE OF d SKIP LOCKED
"""


@dataclass(frozen=True)
class Answer:
    status: int | None
    ms: int
    body: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@lru_cache(maxsize=256)
def _pool(scheme: str, address: str, port: int, host: str, ca_bundle: str | None) -> urllib3.HTTPConnectionPool:
    """Keep-alive connections to one checked address. TLS still verifies the certificate for ``host`` (SNI
    and hostname check), though the connection goes to the address checked, not to a second DNS answer.
    No retries and no redirects: a redirect is an answer (a failure), never followed."""
    options = {"port": port, "maxsize": SENDERS, "retries": False, "timeout": urllib3.Timeout(total=TIMEOUT_SECONDS)}
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address, server_hostname=host, assert_hostname=host, ca_certs=ca_bundle, **options
        )
    return urllib3.HTTPConnectionPool(address, **options)


def _payload(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> bytes:
    body = {"text": slack_text(delivery.body)} if endpoint.kind == WebhookEndpoint.Kind.SLACK else delivery.body
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def post(endpoint: WebhookEndpoint, delivery: WebhookDelivery, *, secret: str, address: str) -> Answer:
    """One attempt: the signed POST to ``address`` (what ``check_url`` checked), its answer (the body read up
    to a cap), or why there was none."""
    started = time.monotonic()
    elapsed = lambda: int((time.monotonic() - started) * 1000)  # noqa: E731
    body, timestamp = _payload(endpoint, delivery), int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Baton-Webhooks/1",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, delivery.message_id, timestamp, body),
    }
    parts = urlsplit(endpoint.url)
    headers["Host"] = parts.netloc.rpartition("@")[2]
    pool = _pool(
        parts.scheme,
        address,
        parts.port or (443 if parts.scheme == "https" else 80),
        parts.hostname or "",
        settings.WEBHOOKS_CA_BUNDLE,
    )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen(
            "POST", path, body=body, headers=headers, redirect=False, preload_content=False, assert_same_host=False
        )
        text = _read_capped(response, started)
        return Answer(response.status, elapsed(), text[:RESPONSE_KEEP])
    except urllib3.exceptions.HTTPError as e:
        return Answer(None, elapsed(), error=_reason(e))


def _reason(error: urllib3.exceptions.HTTPError) -> str:
    if isinstance(error, urllib3.exceptions.NewConnectionError):  # (a subclass of the timeout errors)
        return "could not connect (refused or unreachable)"
    if isinstance(error, urllib3.exceptions.TimeoutError):
        return "no answer within 10 s"
    if isinstance(error, urllib3.exceptions.SSLError):
        return "the TLS handshake failed (certificate?)"
    return f"the connection failed ({type(error).__name__})"


def _read_capped(response: urllib3.BaseHTTPResponse, started: float) -> str:
    """The answer's body up to RESPONSE_READ_LIMIT and the 10 s deadline (a receiver dripping bytes cannot hold
    a sender); the connection goes back to the pool only when the body was read to its end."""
    chunks, size, complete = [], 0, True
    try:
        for chunk in response.stream(8192, decode_content=True):
            chunks.append(chunk)
            size += len(chunk)
            if size >= RESPONSE_READ_LIMIT or time.monotonic() - started > TIMEOUT_SECONDS:
                complete = False
                break
    finally:
        if complete:
            response.release_conn()
        else:
            response.close()
    text = b"".join(chunks)[:RESPONSE_READ_LIMIT].decode("utf-8", "replace")
    return text.replace("\x00", "\ufffd")  # PostgreSQL text holds no NULs


def backoff(attempts: int) -> timedelta:
    """Exponential with jitter: about 10 s, 20 s, 40 s … capped at 6 h (a few dozen attempts in 3 days)."""
    seconds = min(10 * 2 ** (attempts - 1), 6 * 3600)
    return timedelta(seconds=seconds * random.uniform(0.5, 1.5))


def deliver_due(*, now: datetime | None = None, limit: int = BATCH) -> int:
    """Send what is due, a batch at a time, until nothing is. Returns how many attempts were made.
    Safe to run in several workers at once (SKIP LOCKED) and to be killed at any point."""
    with contextlib.suppress(redis.RedisError, OSError):
        get_redis().delete(NUDGE_KEY)  # from here on, a new change nudges again
    attempts, began = 0, time.monotonic()
    while time.monotonic() - began < BUDGET_SECONDS:  # then beat's next pass goes on: no task runs for long
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(DUE, {"now": now or timezone.now(), "limit": limit})
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                return attempts
            rows = list(WebhookDelivery.objects.filter(pk__in=ids).order_by("id"))
            answers = _send(rows)
            _record(rows, answers, now or timezone.now())  # backoff counts from after the attempt
        attempts += len(rows)
    return attempts


def _send(rows: list[WebhookDelivery]) -> list[Answer]:
    """One attempt for each row, SENDERS at a time; each endpoint's address is checked once per batch."""
    endpoints = {e.pk: e for e in WebhookEndpoint.objects.filter(pk__in={r.endpoint_id for r in rows})}
    refused, secrets_, addresses = {}, {}, {}
    for pk, endpoint in endpoints.items():
        try:
            addresses[pk] = check_url(endpoint.url)  # again: what resolved to a public address may not now
            secrets_[pk] = secret_of(endpoint)
        except WebhookRefused as e:
            refused[pk] = Answer(None, 0, error=str(e))

    def attempt(delivery: WebhookDelivery) -> Answer:
        if delivery.endpoint_id in refused:
            return refused[delivery.endpoint_id]
        try:
            pk = delivery.endpoint_id
            return post(endpoints[pk], delivery, secret=secrets_[pk], address=addresses[pk])
        except Exception as e:  # one odd answer must not undo the batch's other results
            log.exception("webhook delivery %s failed unexpectedly", delivery.pk)
            return Answer(None, 0, error=f"could not be sent ({type(e).__name__})")

    with ThreadPoolExecutor(SENDERS) as pool:
        return list(pool.map(attempt, rows))


def _record(rows: list[WebhookDelivery], answers: list[Answer], now: datetime) -> None:
    ok_endpoints, failing, gone = set(), set(), set()
    for delivery, answer in zip(rows, answers, strict=True):
        delivery.attempts += 1
        delivery.response_status, delivery.response_ms = answer.status, answer.ms
        delivery.response_body, delivery.error = answer.body, answer.error[:300]
        if answer.ok:
            delivery.status, delivery.delivered_at = Status.DELIVERED, now
            ok_endpoints.add(delivery.endpoint_id)
        elif answer.status == 410:
            delivery.status, delivery.error = Status.FAILED, "The receiver answered 410 Gone; the endpoint is disabled."
            gone.add(delivery.endpoint_id)
        else:
            failing.add(delivery.endpoint_id)
            if now - delivery.created_at >= GIVE_UP_AFTER:
                delivery.status = Status.FAILED
            else:
                delivery.next_attempt_at = now + backoff(delivery.attempts)
    with connection.cursor() as cursor:  # one statement for the batch (bulk_update's CASE per column is slow)
        cursor.execute(
            """
            UPDATE crm_webhookdelivery d SET attempts = r.attempts, status = r.status, delivered_at = r.delivered_at,
                next_attempt_at = r.next_attempt_at, response_status = r.response_status,
                response_ms = r.response_ms, response_body = r.response_body, error = r.error
            FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::int[],
                        %s::int[], %s::text[], %s::text[])
                AS r(id, attempts, status, delivered_at, next_attempt_at, response_status, response_ms,
                     response_body, error)
            WHERE d.id = r.id
            """,
            [
                [d.pk for d in rows],
                [d.attempts for d in rows],
                [d.status for d in rows],
                [d.delivered_at for d in rows],
                [d.next_attempt_at for d in rows],
                [d.response_status for d in rows],
                [d.response_ms for d in rows],
                [d.response_body for d in rows],
                [d.error for d in rows],
            ],
        )
    WebhookEndpoint.objects.filter(pk__in=ok_endpoints, failing_since__isnull=False).update(failing_since=None)
    WebhookEndpoint.objects.filter(pk__in=failing - ok_endpoints, failing_since=None).update(failing_since=now)
    WebhookEndpoint.objects.filter(pk__in=gone).update(enabled=False, disabled_reason="The receiver answered 410 Gone.")
    for endpoint in WebhookEndpoint.objects.filter(pk__in=failing, enabled=True, failing_since__lt=now - GIVE_UP_AFTER):
        disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
            enabled=False, disabled_reason="Every delivery failed for 3 days."
        )
        if disabled:  # once, whichever worker gets there first
            transaction.on_commit(lambda name=endpoint.name: _tell_admins(name))


def _tell_admins(name: str) -> None:
    subject = f"Webhook endpoint “{name}” disabled"
    body = (
        f"Every delivery to “{name}” failed for 3 days, so Baton stopped sending to it. Fix the receiver, then "
        f"enable it again and replay the failed deliveries: {settings.BASE_URL.rstrip('/')}{reverse('webhooks')}"
    )
    send_soon(EMAIL_ADMINS_TASK, [subject, body], what=f"the email telling admins “{name}” was disabled")


def email_admins(*, subject: str, body: str) -> int:
    """Email every active admin. Raises what the mail server raises (the task retries)."""
    admins = list(
        get_user_model()
        .objects.filter(groups__name="admin", is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, admins) if admins else 0


# --- Slack ---------------------------------------------------------------------------------------------------


def slack_text(body: dict[str, Any]) -> str:
    """A readable Slack message: who, the score, why (top reasons), and a link to the lead."""
    data = body.get("data") or {}
    contact = data.get("contact")
    if not contact:
        return data.get("message") or body.get("type", "")
    who = " ".join(p for p in (contact.get("first_name"), contact.get("last_name")) if p) or contact["email"]
    if contact.get("company"):
        who += f" ({contact['company']})"
    what = {
        "contact.stage_changed": lambda: f"is now {(data.get('change') or {}).get('to', contact['stage']).upper()}",
        "handoff.created": lambda: "is sales-ready and waiting in the queue",
        "handoff.claimed": lambda: f"was claimed by {(data.get('handoff') or {}).get('owner') or 'a rep'}",
        "handoff.accepted": lambda: "was accepted by sales",
        "handoff.rejected": lambda: (
            f"was rejected by sales ({(data.get('handoff') or {}).get('rejection_reason', '')})"
        ),
        "handoff.sla_breached": lambda: "breached its handoff SLA",
    }.get(body.get("type"), lambda: body.get("type", ""))()
    reasons = sorted(contact.get("breakdown") or [], key=lambda r: -abs(r.get("points", 0)))[:3]
    why = ", ".join(f"{r['rule']} {r['points']:+g}" for r in reasons)
    link = settings.BASE_URL.rstrip("/") + reverse("contact_detail", args=[contact["id"]])
    return f"*{who}* {what} — score {contact['score']}" + (f". Why: {why}" if why else "") + f"\n<{link}|Open in Baton>"
