"""The one ingest path behind the events API, the snippet's collect endpoint, identify and hosted forms.

``record`` stores a validated request in one transaction of set-based statements (no query per event):
it creates unknown contacts, companies and forms, links visitors to contacts, inserts the events with
duplicates skipped, attaches a visitor's earlier anonymous events, applies profile fields and opt-outs,
sets the first-touch channel, and marks every contact it touched as stale for the scoring worker.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.db import OperationalError, connection, transaction
from psycopg.types.json import Jsonb

from leads.models import Source
from leads.schemas import PROFILE_FIELDS, ContactFields, EventIn

# Profile fields stored on the contact itself; company, company_size and industry belong to its company.
CONTACT_TEXT_FIELDS = (
    "first_name",
    "last_name",
    "phone",
    "job_title",
    "country",
    "budget",
    "authority",
    "need",
    "timeline",
)
COMPANY_FIELDS = ("company", "company_size", "industry")
OPT_OUT = {"email_unsubscribe": True, "email_subscribe": False}
# Submitted form fields that are not profile fields are kept on the contact's profile, within reason.
EXTRA_FIELD_LIMIT = 50
EXTRA_VALUE_LIMIT = 500
NOT_PROFILE = {"form", "email", "url", "path", "title", "referrer"}
DEADLOCK_RETRIES = 3


@dataclass
class Recorded:
    accepted: int = 0
    duplicates: int = 0
    attached: int = 0
    contact_ids: list[int] = field(default_factory=list)


@dataclass
class _ContactChange:
    fields: dict[str, Any] = field(default_factory=dict)
    company: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    opt_out: bool | None = None
    last_activity: datetime | None = None

    def any(self) -> bool:
        return bool(self.fields or self.company or self.extra or self.last_activity) or self.opt_out is not None

    def saw(self, moment: datetime) -> None:
        self.last_activity = max(self.last_activity or moment, moment)


def channel_hint(properties: dict[str, Any]) -> str:
    """The channel an event points at: its utm_source, else its referrer's host when that is another site."""
    utm = properties.get("utm_source")
    if isinstance(utm, str) and utm.strip():
        return utm.strip().lower()[:100]
    referrer, url = properties.get("referrer"), properties.get("url")
    if not isinstance(referrer, str) or not referrer:
        return ""
    try:
        host = urlsplit(referrer).hostname or ""
        own = urlsplit(url).hostname if isinstance(url, str) else None
    except ValueError:
        return ""
    if not host or host == own:
        return ""
    return host.removeprefix("www.")[:100]


def profile_of(event: EventIn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(profile fields, extra fields) an event carries: a form's submitted fields, then its ``contact`` object."""
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if event.type == "form_submit":
        for key, value in event.properties.items():
            if key in PROFILE_FIELDS:
                checked = _as_profile_field(key, value)
                if checked is not None:
                    fields[key] = checked
            elif _is_extra_field(key, value) and len(extra) < EXTRA_FIELD_LIMIT:
                extra[key[:64]] = value
    if event.contact is not None:
        fields.update({k: v for k, v in event.contact.model_dump(exclude_none=True).items() if v != ""})
    return fields, extra


def _as_profile_field(key: str, value: Any) -> Any:
    """A submitted value as profile field ``key`` takes it, or None when it is empty or does not fit."""
    if key == "company_size" and isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    try:
        checked = getattr(ContactFields.model_validate({key: value}), key)
    except ValueError:
        return None
    return None if checked == "" else checked


def _is_extra_field(key: str, value: Any) -> bool:
    return (
        key not in NOT_PROFILE
        and not key.startswith(("_", "utm_"))
        and isinstance(value, str | int | float | bool)
        and len(str(value)) <= EXTRA_VALUE_LIMIT
    )


def record(*, source: Source, events: list[EventIn], received_at: datetime) -> Recorded:
    """Store validated events of ``source``. Safe to run twice: repeated event ids count as duplicates.

    All or nothing, in one transaction; retried on a deadlock. Returns what was stored and which
    contacts were marked stale (they need rescoring).
    """
    for attempt in range(DEADLOCK_RETRIES):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                return _Batch(cursor, source, received_at).record(events)
        except OperationalError as e:
            if getattr(e.__cause__, "sqlstate", None) != "40P01" or attempt == DEADLOCK_RETRIES - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def identify(
    *, source: Source, visitor_id: str, email: str, contact: ContactFields | None, at: datetime
) -> tuple[int, Recorded]:
    """Tie ``visitor_id`` to the contact ``email`` (creating it) and attach the visitor's anonymous events.

    Returns the contact's id and what changed. Safe to run twice (the second attaches nothing).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        return _Batch(cursor, source, at).identify(visitor_id, email, contact)


class _Batch:
    def __init__(self, cursor, source: Source, now: datetime):
        self.cursor, self.source, self.now = cursor, source, now
        self.changes: dict[int, _ContactChange] = defaultdict(_ContactChange)

    def record(self, events: list[EventIn]) -> Recorded:
        events = sorted(events, key=lambda e: (e.occurred_at or self.now, e.id))
        contact_of = self._contact_ids(sorted({e.email for e in events if e.email}))
        links = {e.visitor_id: contact_of[e.email] for e in events if e.email and e.visitor_id}
        result = Recorded(attached=self._link_visitors(links))
        anonymous = sorted({e.visitor_id for e in events if not e.email and e.visitor_id} - set(links))
        contact_of_visitor = {**self._known_visitors(anonymous), **links}
        self._create_unknown_forms(sorted({e.properties["form"] for e in events if e.type == "form_submit"}))

        rows = []
        for event in events:
            contact_id = contact_of[event.email] if event.email else contact_of_visitor.get(event.visitor_id)
            rows.append((event, contact_id))
            if contact_id is None:
                continue
            change = self.changes[contact_id]
            fields, extra = profile_of(event)
            change.company = fields.pop("company", change.company)
            change.fields.update(fields)
            change.extra.update(extra)
            if event.type in OPT_OUT:
                change.opt_out = OPT_OUT[event.type]
        result.accepted = self._insert_events(rows)
        result.duplicates = len(events) - result.accepted
        result.contact_ids = self._update_contacts()
        return result

    def identify(self, visitor_id: str, email: str, contact: ContactFields | None) -> tuple[int, Recorded]:
        contact_id = self._contact_ids([email])[email]
        result = Recorded(attached=self._link_visitors({visitor_id: contact_id}))
        change = self.changes[contact_id]
        if contact is not None:
            change.fields.update({k: v for k, v in contact.model_dump(exclude_none=True).items() if v != ""})
            change.company = change.fields.pop("company", change.company)
        result.contact_ids = self._update_contacts()
        return contact_id, result

    def _contact_ids(self, emails: list[str]) -> dict[str, int]:
        """Ids of the contacts with these emails, creating the missing ones (in email order, against deadlocks)."""
        if not emails:
            return {}
        self.cursor.execute(
            """
            WITH created AS (
                INSERT INTO crm_contact (email) SELECT unnest(%s::text[]) ORDER BY 1
                ON CONFLICT (email) DO NOTHING RETURNING id, email
            )
            SELECT id, email FROM created
            UNION ALL SELECT id, email FROM crm_contact WHERE email = ANY(%s)
            """,
            [emails, emails],
        )
        found = {email: pk for pk, email in self.cursor.fetchall()}
        missing = [e for e in emails if e not in found]
        if missing:  # created by a concurrent request after this statement's snapshot was taken
            self.cursor.execute("SELECT id, email FROM crm_contact WHERE email = ANY(%s)", [missing])
            found.update({email: pk for pk, email in self.cursor.fetchall()})
        return found

    def _link_visitors(self, links: dict[str, int]) -> int:
        """Record visitor → contact links and attach those visitors' anonymous events. Returns how many."""
        if not links:
            return 0
        visitors, contacts = list(links), list(links.values())
        self.cursor.execute(
            """
            INSERT INTO leads_visitor (visitor_id, contact_id, identified_at)
            SELECT v, c, %s FROM unnest(%s::text[], %s::bigint[]) AS link(v, c)
            ON CONFLICT (visitor_id) DO UPDATE
                SET contact_id = EXCLUDED.contact_id, identified_at = EXCLUDED.identified_at
            WHERE leads_visitor.contact_id <> EXCLUDED.contact_id
            """,
            [self.now, visitors, contacts],
        )
        self.cursor.execute(
            """
            UPDATE leads_event e SET contact_id = link.c
            FROM unnest(%s::text[], %s::bigint[]) AS link(v, c)
            WHERE e.visitor_id = link.v AND e.contact_id IS NULL
            RETURNING e.contact_id, e.occurred_at
            """,
            [visitors, contacts],
        )
        attached = self.cursor.fetchall()
        for contact_id, occurred_at in attached:
            self.changes[contact_id].saw(occurred_at)
        return len(attached)

    def _known_visitors(self, visitors: list[str]) -> dict[str, int]:
        if not visitors:
            return {}
        self.cursor.execute("SELECT visitor_id, contact_id FROM leads_visitor WHERE visitor_id = ANY(%s)", [visitors])
        return dict(self.cursor.fetchall())

    def _create_unknown_forms(self, slugs: list[str]) -> None:
        """A form_submit naming an unknown slug creates that form, kind "other", for an admin to classify."""
        if slugs:
            self.cursor.execute(
                """
                INSERT INTO leads_form (slug, name, kind, thank_you_url, created_at)
                SELECT s, s, 'other', '', %s FROM unnest(%s::text[]) AS s ORDER BY 1
                ON CONFLICT (slug) DO NOTHING
                """,
                [self.now, slugs],
            )

    def _insert_events(self, rows: list[tuple[EventIn, int | None]]) -> int:
        """Insert events, skipping ids this source already sent; returns how many were new."""
        rows = sorted(rows, key=lambda row: row[0].id)
        self.cursor.execute(
            """
            WITH stored AS (
                INSERT INTO leads_event
                    (source_id, client_id, contact_id, visitor_id, type, occurred_at, received_at, properties, channel)
                SELECT %s, e.client_id, e.contact_id, e.visitor_id, e.type, e.occurred_at, %s, e.properties, e.channel
                FROM unnest(
                    %s::text[], %s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[], %s::text[]
                ) AS e(client_id, contact_id, visitor_id, type, occurred_at, properties, channel)
                ON CONFLICT (source_id, client_id) DO NOTHING
                RETURNING contact_id, occurred_at
            )
            SELECT contact_id, max(occurred_at), count(*) FROM stored GROUP BY contact_id
            """,
            [
                self.source.pk,
                self.now,
                [e.id for e, _ in rows],
                [c for _, c in rows],
                [e.visitor_id or "" for e, _ in rows],
                [e.type for e, _ in rows],
                [e.occurred_at or self.now for e, _ in rows],
                [Jsonb(e.properties) for e, _ in rows],
                [channel_hint(e.properties) for e, _ in rows],
            ],
        )
        accepted = 0
        for contact_id, last, count in self.cursor.fetchall():
            accepted += count
            if contact_id is not None:
                self.changes[contact_id].saw(last)
        return accepted

    def _company_ids(self) -> dict[str, int]:
        companies: dict[str, dict[str, Any]] = {}
        for change in self.changes.values():
            if change.company:
                facts = companies.setdefault(change.company.lower(), {"name": change.company})
                for key, column in (("company_size", "size"), ("industry", "industry")):
                    if key in change.fields:
                        facts[column] = change.fields[key]
        if not companies:
            return {}
        names = sorted(companies)
        self.cursor.execute(
            """
            INSERT INTO crm_company (name) SELECT unnest(%s::text[]) ORDER BY 1
            ON CONFLICT (lower(name)) DO NOTHING
            """,
            [[companies[n]["name"] for n in names]],
        )
        self.cursor.execute(
            """
            UPDATE crm_company c SET size = coalesce(f.size, c.size),
                industry = coalesce(f.industry, c.industry), updated_at = %s
            FROM unnest(%s::text[], %s::int[], %s::text[]) AS f(name, size, industry)
            WHERE lower(c.name) = f.name AND (f.size IS NOT NULL OR f.industry IS NOT NULL)
            """,
            [self.now, names, [companies[n].get("size") for n in names], [companies[n].get("industry") for n in names]],
        )
        self.cursor.execute("SELECT lower(name), id FROM crm_company WHERE lower(name) = ANY(%s)", [names])
        return dict(self.cursor.fetchall())

    def _update_contacts(self) -> list[int]:
        """Apply profile fields, opt-outs, last activity and first-touch channel; mark the contacts stale."""
        changes = {pk: change for pk, change in self.changes.items() if change.any()}
        if not changes:
            return []
        company_ids = self._company_ids()
        ids = sorted(changes)
        # Lock in id order, as every writer of contacts here does, so two requests cannot deadlock.
        self.cursor.execute("SELECT 1 FROM crm_contact WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE", [ids])
        columns = ", ".join(f"{name} = coalesce(v.{name}, c.{name})" for name in CONTACT_TEXT_FIELDS)
        arrays = ", ".join("%s::text[]" for _ in CONTACT_TEXT_FIELDS)
        names = ", ".join(CONTACT_TEXT_FIELDS)
        self.cursor.execute(
            f"""
            UPDATE crm_contact c SET {columns},
                company_id = coalesce(v.company_id, c.company_id),
                profile = c.profile || v.extra,
                email_opt_out = coalesce(v.opt_out, c.email_opt_out),
                last_activity_at = greatest(c.last_activity_at, v.last_activity),
                stale_since = coalesce(c.stale_since, %s),
                updated_at = %s,
                channel = CASE WHEN c.channel <> '' THEN c.channel ELSE coalesce((
                    SELECT coalesce(nullif(e.channel, ''), s.name) FROM leads_event e
                    JOIN leads_source s ON s.id = e.source_id
                    WHERE e.contact_id = c.id ORDER BY e.occurred_at, e.id LIMIT 1), '') END
            FROM unnest(%s::bigint[], {arrays}, %s::bigint[], %s::jsonb[], %s::bool[], %s::timestamptz[])
                AS v(id, {names}, company_id, extra, opt_out, last_activity)
            WHERE c.id = v.id
            """,
            [
                self.now,
                self.now,
                ids,
                *([changes[pk].fields.get(name) for pk in ids] for name in CONTACT_TEXT_FIELDS),
                [company_ids.get((changes[pk].company or "").lower()) for pk in ids],
                [Jsonb(changes[pk].extra) for pk in ids],
                [changes[pk].opt_out for pk in ids],
                [changes[pk].last_activity for pk in ids],
            ],
        )
        return ids
