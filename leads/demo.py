"""Demo activity: 90 days of events across channels, sent through the real ingest path."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta

from crm.models import Contact
from leads import ingest
from leads.models import ApiKey, Source
from leads.schemas import EventIn

CHANNELS = ("google", "linkedin", "newsletter", "partner", "")  # "" : came straight to the site
PAGES = ("/", "/blog/lead-scoring", "/blog/handoff", "/docs", "/pricing", "/product", "/product/tour", "/customers")
FORMS = ("newsletter", "ebook", "whitepaper", "webinar", "demo", "contact")
BATCH = 1000


def sources() -> tuple[Source, Source]:
    """The demo's website (with a site key for http://127.0.0.1:8000) and its email tool."""
    website, created = Source.objects.get_or_create(
        name="website", defaults={"kind": Source.Kind.WEBSITE, "allowed_origins": ["http://127.0.0.1:8000"]}
    )
    if created:
        ApiKey.issue(source=website, scope=ApiKey.Scope.SITE)
    mailer, _ = Source.objects.get_or_create(name="mailer", defaults={"kind": Source.Kind.EMAIL})
    return website, mailer


def _event(rng: random.Random, n: int, seed: int, email: str, at: datetime, keen: float) -> tuple[str, dict]:
    """One plausible event for a contact; ``keen`` (0-1) makes buying signals likelier. (source, event)."""
    roll = rng.random()
    base = {"id": f"demo-{seed}-{n}", "email": email, "occurred_at": at.isoformat()}
    if roll < 0.55:
        path = rng.choice(PAGES[4:] if rng.random() < keen else PAGES)
        utm = rng.choice(CHANNELS)
        properties = {"url": f"https://www.example.com{path}", "path": path, "title": path.strip("/") or "Home"}
        if utm:
            properties |= {"utm_source": utm, "utm_medium": "cpc" if utm == "google" else "social"}
        return "website", base | {"type": "page_view", "properties": properties}
    if roll < 0.8:
        return "mailer", base | {"type": "email_open", "properties": {"campaign": f"nurture-{rng.randint(1, 6)}"}}
    if roll < 0.92:
        return "mailer", base | {"type": "email_click", "properties": {"campaign": "nurture", "link": "/pricing"}}
    if roll < 0.985:
        form = rng.choice(FORMS[4:] if rng.random() < keen * 0.3 else FORMS[:4])
        return "website", base | {"type": "form_submit", "properties": {"form": form}}
    return "mailer", base | {"type": rng.choice(("email_unsubscribe", "email_bounce")), "properties": {}}


def seed_events(*, count: int = 50_000, seed: int = 7, now: datetime) -> int:
    """Send ``count`` events over the 90 days before ``now`` through ``ingest.record``. Returns how many were new."""
    rng = random.Random(seed)
    website, mailer = sources()
    by_name = {"website": website, "mailer": mailer}
    emails = list(Contact.objects.order_by("id").values_list("email", flat=True))
    # A few keen contacts do most of the buying signals; many barely engage.
    keenness = {email: rng.betavariate(0.6, 2.5) for email in emails}
    cumulative = list(itertools.accumulate(0.2 + 4 * keenness[e] for e in emails))
    pending: dict[str, list[EventIn]] = {"website": [], "mailer": []}
    stored = 0
    for n in range(count):
        email = rng.choices(emails, cum_weights=cumulative)[0]
        at = now - timedelta(days=90 * rng.random() ** (1 + keenness[email]))
        source, data = _event(rng, n, seed, email, at, keenness[email])
        pending[source].append(EventIn.model_validate(data))
        if len(pending[source]) == BATCH:
            stored += ingest.record(
                source=by_name[source], events=pending[source], received_at=now, limit=False
            ).accepted
            pending[source] = []
    for source, events in pending.items():
        if events:
            stored += ingest.record(source=by_name[source], events=events, received_at=now, limit=False).accepted
    return stored
