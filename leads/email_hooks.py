"""The email tools' own webhooks: SendGrid, Mailgun and Postmark payloads as Baton's email events.

Each provider's event id is the event id, so a redelivery is a duplicate. Opens, clicks, bounces,
unsubscribes and spam complaints (⇒ unsubscribe) are kept; other kinds (delivered, processed…) are ignored.
When the source has a signing secret, the provider's signature is checked first:
SendGrid — ECDSA (P-256, SHA-256) over timestamp + body with the webhook's verification key (base64);
Mailgun — HMAC-SHA256 of timestamp + token with the webhook signing key;
Postmark — which signs nothing — HTTP Basic auth whose password is the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.http import HttpRequest

from leads import errors
from leads.models import Source
from leads.parsing import validate
from leads.schemas import EventIn

MAX_HOOK_BYTES = 5 * 1024 * 1024  # SendGrid batches up to a few MB
SIGNATURE_MAX_AGE = 600  # seconds a signed timestamp may be old (replays)
SENDGRID = {
    "open": "email_open",
    "click": "email_click",
    "bounce": "email_bounce",
    "dropped": "email_bounce",
    "unsubscribe": "email_unsubscribe",
    "group_unsubscribe": "email_unsubscribe",
    "spamreport": "email_unsubscribe",
}
MAILGUN = {
    "opened": "email_open",
    "clicked": "email_click",
    "unsubscribed": "email_unsubscribe",
    "complained": "email_unsubscribe",
}
POSTMARK = {
    "Open": "email_open",
    "Click": "email_click",
    "Bounce": "email_bounce",
    "SpamComplaint": "email_unsubscribe",
}


def _iso(moment: Any) -> str | None:
    """A provider's time (Unix seconds, or ISO 8601) as RFC 3339, or None to use the time received."""
    try:
        if isinstance(moment, int | float) and not isinstance(moment, bool):
            return datetime.fromtimestamp(float(moment), tz=UTC).isoformat().replace("+00:00", "Z")
        if isinstance(moment, str) and moment:
            parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _event(event_id: Any, event_type: str, email: Any, at: Any, **properties: Any) -> dict:
    data = {
        "id": str(event_id)[:128],
        "type": event_type,
        "email": email,
        "properties": {k: v for k, v in properties.items() if v not in (None, "")},
    }
    if (moment := _iso(at)) is not None:
        data["occurred_at"] = moment
    return data


def sendgrid(body: Any) -> list[dict]:
    if not isinstance(body, list):
        raise errors.malformed("SendGrid posts a JSON array of events.")
    found = []
    for item in body:
        if isinstance(item, dict) and item.get("event") in SENDGRID:
            category = item.get("category")
            found.append(
                _event(
                    item.get("sg_event_id")
                    or f"{item.get('sg_message_id')}:{item.get('event')}:{item.get('timestamp')}",
                    SENDGRID[item["event"]],
                    item.get("email"),
                    item.get("timestamp"),
                    provider="sendgrid",
                    link=item.get("url"),
                    campaign=category if isinstance(category, str) else None,
                    reason=item.get("reason"),
                    kind=item["event"],
                )
            )
    return found


def mailgun(body: Any) -> list[dict]:
    data = body.get("event-data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise errors.malformed('Mailgun posts {"signature": …, "event-data": …}.')
    event = data.get("event")
    if event == "failed" and data.get("severity") == "permanent":
        kind = "email_bounce"
    elif event in MAILGUN:
        kind = MAILGUN[event]
    else:
        return []
    tags = data.get("tags")
    return [
        _event(
            data.get("id") or f"{(data.get('message') or {}).get('headers', {}).get('message-id')}:{event}",
            kind,
            data.get("recipient"),
            data.get("timestamp"),
            provider="mailgun",
            link=data.get("url"),
            campaign=tags[0] if isinstance(tags, list) and tags and isinstance(tags[0], str) else None,
            reason=(data.get("delivery-status") or {}).get("description")
            if isinstance(data.get("delivery-status"), dict)
            else None,
            kind=event,
        )
    ]


def postmark(body: Any) -> list[dict]:
    if not isinstance(body, dict) or not isinstance(body.get("RecordType"), str):
        raise errors.malformed("Postmark posts one JSON object with a RecordType.")
    record = body["RecordType"]
    if record == "SubscriptionChange":
        if not body.get("SuppressSending"):
            return []  # a resubscription
        kind = "email_unsubscribe"
    elif record in POSTMARK:
        kind = POSTMARK[record]
    else:
        return []
    email = body.get("Recipient") or body.get("Email")
    at = body.get("ReceivedAt") or body.get("BouncedAt") or body.get("ChangedAt")
    event_id = body.get("ID") or f"{body.get('MessageID')}:{record}:{at}"
    return [
        _event(
            f"postmark-{event_id}" if body.get("ID") else event_id,
            kind,
            email,
            at,
            provider="postmark",
            link=body.get("OriginalLink"),
            campaign=body.get("Tag"),
            reason=body.get("Description") or body.get("Type"),
            kind=record,
        )
    ]


PARSERS: dict[str, Callable[[Any], list[dict]]] = {"sendgrid": sendgrid, "mailgun": mailgun, "postmark": postmark}


def events(provider: str, body: Any) -> tuple[list[EventIn], int]:
    """The provider's events as ours, and how many it sent that are not kept (other kinds, or unusable —
    skipped rather than refused, or the provider would send the whole batch again forever)."""
    found = PARSERS[provider](body)
    kept = [event for data in found if (event := validate(EventIn, data)[0]) is not None]
    total = len(body) if isinstance(body, list) else 1
    return kept, total - len(kept)


def _refuse(why: str) -> errors.ApiError:
    return errors.unauthorized(f"The webhook signature does not check out: {why}.")


def verify(provider: str, *, source: Source, request: HttpRequest, raw: bytes, body: Any, now: float) -> None:
    """Check the provider's signature with the source's signing secret (nothing to check without one)."""
    secret = source.signing_secret
    if not secret:
        return
    if provider == "sendgrid":
        signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
        timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
        try:
            key = serialization.load_der_public_key(base64.b64decode(secret))
            key.verify(base64.b64decode(signature), timestamp.encode() + raw, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError, TypeError, binascii.Error):
            raise _refuse("SendGrid's ECDSA signature is missing or wrong") from None
        _fresh(timestamp, now)
    elif provider == "mailgun":
        signed = body.get("signature") if isinstance(body, dict) else None
        if not isinstance(signed, dict):
            raise _refuse("Mailgun's signature block is missing")
        timestamp, token = str(signed.get("timestamp", "")), str(signed.get("token", ""))
        expected = hmac.new(secret.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(signed.get("signature", ""))):
            raise _refuse("Mailgun's HMAC does not match the signing key")
        _fresh(timestamp, now)
    else:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            password = base64.b64decode(encoded).decode().partition(":")[2] if scheme.lower() == "basic" else ""
        except (ValueError, binascii.Error):
            password = ""
        if not hmac.compare_digest(password.encode(), secret.encode()):
            raise _refuse("Postmark's basic-auth password is not the source's secret")


def _fresh(timestamp: str, now: float) -> None:
    try:
        age = abs(now - float(timestamp))
    except ValueError:
        raise _refuse("its timestamp is not a number") from None
    if age > SIGNATURE_MAX_AGE:
        raise _refuse("its timestamp is more than 10 minutes away (a replay?)")
