"""The one ingest path behind the events API, the snippet's collect endpoint, identify and hosted forms.

``record`` takes the request's tokens of its source's rate limit (leads.ratelimit: mostly without a Redis call),
then stores it with one set-based SQL statement (``store_statement``), atomic by itself and committed on its
own: it upserts the contacts it has something to store on (profile fields, opt-outs, first-touch channel) and
their companies, records their activity (last event, the stale mark for the scoring worker), links visitors to
contacts and attaches their earlier anonymous events, creates unknown forms, and inserts the events (duplicates
skipped). Anonymous events of visitors linked earlier cost one lookup first; a request that only names its contacts
is first tried as naming known ones (a second statement when one is new). Then the contacts' rescore is asked
for, with the process's other requests' (crm.freshness.request_rescore_soon). One round trip for a request of a
busy source with a remembered key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, partial
from typing import Any
from urllib.parse import urlsplit

from django.db import connection, transaction

from crm.freshness import request_rescore_soon
from crm.retry import retrying
from leads import ratelimit
from leads.models import ApiKey, Source
from leads.schemas import PROFILE_FIELDS, WHOLE_NUMBER, ContactFields, EventIn

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
OPT_OUT = {"email_unsubscribe": True, "email_subscribe": False}
# Submitted form fields that are not profile fields are kept on the contact's profile, within reason.
EXTRA_FIELD_LIMIT = 50
EXTRA_VALUE_LIMIT = 500
NOT_PROFILE = {"form", "email", "url", "path", "title", "referrer"}


@dataclass
class Recorded:
    accepted: int = 0
    duplicates: int = 0
    attached: int = 0
    contact_ids: list[int] = field(default_factory=list)


@dataclass
class _Contact:
    """What one request says about one contact (by email)."""

    fields: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    last_activity: datetime | None = None
    first_channel: str = ""
    opt_out: bool | None = None

    @property
    def plain(self) -> bool:
        """Whether it only names the contact: nothing to store on it but its activity."""
        return not (self.fields or self.extra) and self.opt_out is None


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
    if key == "company_size" and isinstance(value, str) and WHOLE_NUMBER.fullmatch(value.strip()):
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


COLUMNS = ", ".join(CONTACT_TEXT_FIELDS)
# Progressive profiling: a field given (non-empty) replaces the stored one; an empty one leaves it.
KEEP_UNLESS_GIVEN = ", ".join(f"{f} = coalesce(nullif(EXCLUDED.{f}, ''), crm_contact.{f})" for f in CONTACT_TEXT_FIELDS)
# The caller's key, as its process remembers it: still valid, and its source unchanged (leads.auth).
CALLER = """caller AS (
    SELECT FROM leads_apikey k JOIN leads_source s ON s.id = k.source_id
    WHERE k.id = %(key)s AND k.revoked_at IS NULL
        AND s.id = %(source)s AND s.name = %(source_name)s AND s.rate_limit = %(rate_limit)s
)"""


class StaleKey(Exception):
    """The key a store was called with was revoked, or its source changed, since its process looked it up."""


# A request's contacts and events reach PostgreSQL as two JSON documents (one parameter each): json.dumps is C,
# while psycopg adapts a list per column in Python (a third of a 500-event request's time went there).
# {only} is where a keyed statement writes nothing unless the caller's key is as remembered; {writes}, where also
# a known-only statement writes nothing unless every contact is known (store_statement).
INPUT = f"""input AS (
    SELECT * FROM json_to_recordset(%(contacts)s::json) AS i(
        email text, {", ".join(f"{name} text" for name in CONTACT_TEXT_FIELDS)},
        company text, company_size int, industry text, extra jsonb, last_activity timestamptz, first_channel text,
        opt_out boolean, plain boolean
    )
    {{only}}
)"""
COMPANIES = """companies AS (
    INSERT INTO crm_company (name, size, industry)
    SELECT DISTINCT ON (lower(company)) company, company_size, coalesce(industry, '')
    FROM input WHERE company IS NOT NULL ORDER BY lower(company)
    ON CONFLICT (lower(name)) DO UPDATE SET
        size = coalesce(EXCLUDED.size, crm_company.size),
        industry = coalesce(nullif(EXCLUDED.industry, ''), crm_company.industry),
        updated_at = now()
    RETURNING id, lower(name) AS key
)"""
LINKS = """links AS (
    SELECT * FROM unnest(%(link_visitors)s::text[], %(link_emails)s::text[]) AS l(visitor_id, email)
),
anonymous AS (  -- what a newly linked visitor did before it was known: its first touch and last visit
    SELECT l.email,
        (array_agg(coalesce(nullif(e.channel, ''), s.name) ORDER BY e.occurred_at, e.id))[1] AS channel,
        max(e.occurred_at) AS last_at
    FROM links l
    JOIN leads_event e ON e.visitor_id = l.visitor_id AND e.contact_id IS NULL
    JOIN leads_source s ON s.id = e.source_id
    GROUP BY l.email
)"""
LINKED = """visitors AS (
    INSERT INTO leads_visitor (visitor_id, contact_id, identified_at)
    SELECT l.visitor_id, c.id, %(now)s FROM links l JOIN contacts c ON c.email = l.email
    ON CONFLICT (visitor_id) DO UPDATE
        SET contact_id = EXCLUDED.contact_id, identified_at = EXCLUDED.identified_at
        WHERE leads_visitor.contact_id <> EXCLUDED.contact_id
),
attached AS (
    UPDATE leads_event e SET contact_id = c.id
    FROM links l JOIN contacts c ON c.email = l.email
    WHERE e.visitor_id = l.visitor_id AND e.contact_id IS NULL
    RETURNING e.id
)"""
FORMS = """forms AS (  -- a form_submit naming an unknown form creates it, kind "other", for an admin to classify
    INSERT INTO leads_form (slug, name, kind, thank_you_url, created_at)
    SELECT slug, slug, 'other', '', %(now)s FROM unnest(%(forms)s::text[]) AS slug {writes} ORDER BY 1
    ON CONFLICT (slug) DO NOTHING
)"""
STORED = """stored AS (
    INSERT INTO leads_event
        (source_id, client_id, contact_id, visitor_id, type, occurred_at, received_at, properties, channel)
    SELECT %(source)s, e.client_id, c.id, e.visitor_id, e.type, e.occurred_at, %(now)s, e.properties, e.channel
    FROM json_to_recordset(%(events)s::json) AS e(
        client_id text, email text, visitor_id text, type text, occurred_at timestamptz, properties jsonb, channel text
    )
    LEFT JOIN contacts c ON c.email = e.email
    {writes}
    ORDER BY e.client_id
    ON CONFLICT (source_id, client_id) DO NOTHING
    RETURNING 1
)"""


@cache
def store_statement(
    *, companies: bool, links: bool, forms: bool, opt_outs: bool, keyed: bool, known_only: bool = False
) -> str:
    """The one statement that stores a request, with only the parts it needs (each variant is prepared once).

    Its CTEs cannot see one another's writes: so new contacts are inserted with all they carry, and events
    find their contacts through ``contacts``: the ``known`` ones, which exist, have their first touch and are given
    nothing to store (an event by email: most requests), read and not written (their ``updated_at`` stays; a new
    score shows the activity), and the rest as upserted. A known contact's row is only key-share locked, once, in
    email order (the events have no foreign key to lock it per event: leads.models.Event): a stage move or an
    import, which hold the rows they write until they commit, do not hold ingest up; a contact is not deleted under
    its new events, and one deleted meanwhile is not known (it is created again); and no new version of a wide row
    is written per event. ``keyed``: it writes nothing unless the caller's key is still as remembered (``caller``);
    its fourth column says whether it was. ``known_only``, for a request that only names its contacts: it writes
    nothing unless every one of them is known, and inserts no contact (an insert, even of no row, opens every index
    of the contacts and fires their triggers: a third of what the database spent on a one-event request more than
    on a bare insert); its last column says whether they all were.
    """
    caller = "EXISTS (SELECT FROM caller)" if keyed else "true"
    every = "(SELECT every FROM complete)" if known_only else "true"
    only = {"only": f"WHERE {caller}", "writes": f"WHERE {caller} AND {every}"}
    company = "co.id" if companies else "NULL::bigint"
    first_touch = "coalesce(a.channel, i.first_channel)" if links else "i.first_channel"
    last_event = "greatest(i.last_activity, a.last_at)" if links else "i.last_activity"
    anonymous = "LEFT JOIN anonymous a ON a.email = i.email" if links else ""
    opt_out = (
        ",\n        email_opt_out = coalesce((SELECT o.opt_out FROM input o WHERE o.email = EXCLUDED.email),"
        " crm_contact.email_opt_out)"
        if opt_outs
        else ""
    )
    known = """known AS MATERIALIZED (  -- contacts the request only names: read, not written
    SELECT c.id, c.email FROM input i JOIN crm_contact c ON c.email = i.email WHERE i.plain AND c.channel <> ''
    ORDER BY c.email FOR KEY SHARE OF c
)"""
    contacts = f"""written AS (  -- profile columns only: score, stage and activity (most indexes) are not touched
    INSERT INTO crm_contact (email, {COLUMNS}, company_id, profile, channel, email_opt_out)
    SELECT i.email, {", ".join(f"coalesce(i.{name}, '')" for name in CONTACT_TEXT_FIELDS)}, {company}, i.extra,
        {first_touch}, coalesce(i.opt_out, false)
    FROM input i
    {"LEFT JOIN companies co ON co.key = lower(i.company)" if companies else ""}
    {anonymous}
    WHERE i.email NOT IN (SELECT email FROM known)
    ORDER BY i.email  -- one lock order for every writer: two requests cannot deadlock
    ON CONFLICT (email) DO UPDATE SET
        {KEEP_UNLESS_GIVEN},
        company_id = coalesce(EXCLUDED.company_id, crm_contact.company_id),
        profile = crm_contact.profile || EXCLUDED.profile,
        channel = CASE WHEN crm_contact.channel <> '' THEN crm_contact.channel ELSE EXCLUDED.channel END,
        updated_at = now(){opt_out}
    RETURNING id, email
),
contacts AS (SELECT id, email FROM known UNION ALL SELECT id, email FROM written)"""
    if known_only:  # none written
        contacts = """complete AS (SELECT (SELECT count(*) FROM known) = (SELECT count(*) FROM input) AS every),
contacts AS (SELECT id, email FROM known)"""
    activity = f"""activity AS (  -- the stale mark the scoring worker looks for, and the newest activity to publish
    INSERT INTO crm_contactactivity (contact_id, last_event_at, stale_since)
    SELECT c.id, {last_event}, %(now)s
    FROM input i JOIN contacts c ON c.email = i.email {anonymous}
    WHERE {every}
    ORDER BY c.id
    ON CONFLICT (contact_id) DO UPDATE SET
        last_event_at = greatest(crm_contactactivity.last_event_at, EXCLUDED.last_event_at),
        stale_since = coalesce(crm_contactactivity.stale_since, EXCLUDED.stale_since)
)"""
    parts = [
        CALLER if keyed else "",
        INPUT.format_map(only),
        COMPANIES if companies else "",
        LINKS if links else "",  # what it writes joins contacts
        known,
        contacts,
        activity,
        LINKED if links else "",
        FORMS.format_map(only) if forms else "",
        STORED.format_map(only),
    ]
    attached = "(SELECT count(*) FROM attached)" if links else "0"
    return (
        "WITH "
        + ",\n".join(part for part in parts if part)
        + f"\nSELECT (SELECT count(*) FROM stored), {attached}, (SELECT array_agg(id ORDER BY id) FROM contacts),"
        + f" {caller}, {every}"
    )


def record(
    *, source: Source, events: list[EventIn], received_at: datetime, limit: bool = True, key: ApiKey | None = None
) -> Recorded:
    """Store validated events of ``source``. Safe to run twice: repeated event ids count as duplicates.

    All or nothing: one statement. Every contact named is marked stale (to be rescored), a repeat included, and
    then, once that has committed, its rescore asked for. Retried on a deadlock. ``limit``: the events take the
    source's rate limit first, and none is stored when it refuses them (a 429 ApiError). ``key``: the caller's
    key as its process remembers it (``source`` is its source); nothing is stored, and StaleKey raised, unless
    the database still has it so. Returns what was stored and the ids of the contacts marked stale.
    """
    events = sorted(events, key=lambda e: (e.occurred_at or received_at, e.id))
    links = {e.visitor_id: e.email for e in events if e.email and e.visitor_id}
    anonymous = sorted({e.visitor_id for e in events if not e.email and e.visitor_id} - set(links))
    if limit:
        ratelimit.take(source, len(events))
    return _store(source, received_at, events, links, anonymous, contact=None, key=key)


def identify(
    *,
    source: Source,
    visitor_id: str,
    email: str,
    contact: ContactFields | None,
    at: datetime,
    limit: bool = True,
    key: ApiKey | None = None,
) -> tuple[int, Recorded]:
    """Tie ``visitor_id`` to the contact ``email`` (creating it) and attach the visitor's anonymous events.

    Returns the contact's id and what changed. Safe to run twice (the second attaches nothing). Takes one token
    of the source's rate limit (unless not to ``limit``); ``key`` as for ``record``.
    """
    if limit:
        ratelimit.take(source, 1)
    result = _store(source, at, [], {visitor_id: email}, [], contact=(email, contact), key=key)
    return result.contact_ids[0], result


def _store(source, now, events, links, anonymous, *, contact, key) -> Recorded:
    def once() -> Recorded:
        with connection.cursor() as cursor:
            email_of = {**_known_visitors(cursor, anonymous), **links}
            contacts = _contacts(events, email_of, source, now)
            if contact is not None:
                email, fields = contact
                _apply_fields(contacts.setdefault(email, _Contact()), fields)
            parameters = _parameters(source, now, events, contacts, links, email_of, key)
            variant = {
                "companies": any(c.fields.get("company") for c in contacts.values()),
                "links": bool(links),
                "forms": bool(parameters["forms"]),
                "opt_outs": any(c.opt_out is not None for c in contacts.values()),
                "keyed": key is not None,
            }
            # A request that only names its contacts (most) first tries them all as known; one naming a new
            # contact stores nothing by that and is stored again whole.
            plain = not links and all(c.plain for c in contacts.values())
            for known_only in (True, False) if plain else (False,):
                cursor.execute(store_statement(**variant, known_only=known_only), parameters)
                accepted, attached, contact_ids, as_remembered, complete = cursor.fetchone()
                if complete:
                    break
        if not as_remembered:
            raise StaleKey
        return Recorded(accepted, len(events) - accepted, attached, contact_ids or [])  # array_agg of no rows: None

    result = retrying(once)
    transaction.on_commit(partial(request_rescore_soon, result.contact_ids))  # (in a caller's transaction: its commit)
    return result


def _known_visitors(cursor, visitors: list[str]) -> dict[str, str]:
    """The contacts' emails of visitors linked by earlier requests."""
    if not visitors:
        return {}
    cursor.execute(
        "SELECT v.visitor_id, c.email FROM leads_visitor v JOIN crm_contact c ON c.id = v.contact_id"
        " WHERE v.visitor_id = ANY(%s)",
        [visitors],
    )
    return dict(cursor.fetchall())


def _apply_fields(contact: _Contact, fields: ContactFields | None) -> None:
    if fields is not None:
        contact.fields.update({k: v for k, v in fields.model_dump(exclude_none=True).items() if v != ""})


def _contacts(events: list[EventIn], email_of: dict[str, str], source: Source, now: datetime) -> dict[str, _Contact]:
    """Fold the events (oldest first) into what they say about each contact."""
    contacts: dict[str, _Contact] = {}
    for event in events:
        email = event.email or email_of.get(event.visitor_id)
        if email is None:
            continue
        contact = contacts.get(email)
        if contact is None:
            contact = contacts[email] = _Contact(first_channel=channel_hint(event.properties) or source.name)
        fields, extra = profile_of(event)
        contact.fields.update(fields)
        contact.extra.update(extra)
        moment = event.occurred_at or now
        contact.last_activity = max(contact.last_activity or moment, moment)
        if event.type in OPT_OUT:
            contact.opt_out = OPT_OUT[event.type]
    return contacts


def _parameters(source, now, events, contacts, links, email_of, key) -> dict[str, Any]:
    def moment(value: datetime | None) -> str | None:
        return value and value.isoformat()

    def contact_row(email: str, row: _Contact) -> dict[str, Any]:
        return {
            "email": email,
            **row.fields,
            "extra": row.extra,
            "last_activity": moment(row.last_activity),
            "first_channel": row.first_channel,
            "opt_out": row.opt_out,
            "plain": row.plain,
        }

    def event_row(event: EventIn) -> dict[str, Any]:
        return {
            "client_id": event.id,
            "email": event.email or email_of.get(event.visitor_id),
            "visitor_id": event.visitor_id or "",
            "type": event.type,
            "occurred_at": moment(event.occurred_at or now),
            "properties": event.properties,
            "channel": channel_hint(event.properties),
        }

    return {
        "now": now,
        "source": source.pk,
        "source_name": source.name,
        "rate_limit": source.rate_limit,
        "key": key and key.pk,
        "contacts": json.dumps([contact_row(email, contacts[email]) for email in sorted(contacts)]),
        "link_visitors": list(links),
        "link_emails": list(links.values()),
        "forms": sorted({e.properties["form"] for e in events if e.type == "form_submit"}),
        "events": json.dumps([event_row(e) for e in sorted(events, key=lambda e: e.id)]),
    }
