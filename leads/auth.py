"""Who is calling: a secret API key (Bearer) or a public site key used from an allowed origin."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db import connection
from django.http import HttpRequest

from leads import errors
from leads.models import ApiKey, Source

# Valid keys this process has looked up, by hash: ingest's statement checks a remembered key again as it stores
# (leads.ingest.StaleKey), so that a key used for nothing else costs no query of its own.
_remembered: dict[str, ApiKey] = {}
REMEMBERED_KEYS = 1000


def _lookup(raw: str, *, remembered: str | None = None) -> ApiKey:
    """The valid key ``raw``; ``remembered``: a scope, for which this process's memory of the key will do."""
    hashed = ApiKey.hash(raw)
    key = _remembered.get(hashed)
    if remembered is not None and key is not None and key.scope == remembered:
        return key
    _remembered.pop(hashed, None)
    # One plain query, about a quarter of what the ORM's would cost.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.id, k.scope, k.revoked_at, s.id, s.name, s.rate_limit, s.allowed_origins, s.signing_secret"
            " FROM leads_apikey k JOIN leads_source s ON s.id = k.source_id WHERE k.hashed = %s",
            [hashed],
        )
        row = cursor.fetchone()
    key = None
    if row is not None:
        key_id, scope, revoked_at, source_id, name, rate_limit, origins, signing_secret = row
        source = Source(
            id=source_id, name=name, rate_limit=rate_limit, allowed_origins=origins, signing_secret=signing_secret
        )
        key = ApiKey(id=key_id, scope=scope, revoked_at=revoked_at, source=source)
    if key is None:
        raise errors.unauthorized("The API key is unknown; check it, or create one in the admin.")
    if key.revoked_at is not None:
        raise errors.unauthorized("The API key was revoked; create a new one in the admin.")
    if len(_remembered) >= REMEMBERED_KEYS:
        _remembered.clear()
    _remembered[hashed] = key
    return key


def query_key(raw: str | None, *, scope: str) -> ApiKey:
    """The key in the address (``?key=…``: tools that cannot send headers), which must have ``scope``."""
    if not raw:
        raise errors.unauthorized("Put the ingest key in the webhook address: …?key=bk_….")
    key = _lookup(raw.strip())
    if key.scope != scope:
        raise errors.forbidden(f"This is a {key.scope} key; this endpoint needs a key with scope '{scope}'.")
    return key


def bearer_key(request: HttpRequest, *, scope: str, remembered: bool = False) -> ApiKey:
    """The key in ``Authorization: Bearer <key>``, which must have ``scope``. Raises 401/403 ApiErrors.

    ``remembered``: as this process last found it valid, if it has (for ingest, which checks it as it stores).
    """
    # META, not request.headers: that would copy every header first (on the busiest path, one event per request).
    scheme, _, raw = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise errors.unauthorized()
    key = _lookup(raw.strip(), remembered=scope if remembered else None)
    if key.scope != scope:
        raise errors.forbidden(f"This is a {key.scope} key; this endpoint needs a key with scope '{scope}'.")
    return key


def origin_of(request: HttpRequest) -> str | None:
    """The page's origin, from the Origin header or else the Referer."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return origin
    referer = request.headers.get("Referer", "")
    try:
        parts = urlsplit(referer)
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def public_key(raw: str | None) -> ApiKey:
    """A valid site key, wherever it is used from. Raises 401/403 ApiErrors."""
    if not raw:
        raise errors.unauthorized("Send the site key (pk_…) with the request.")
    key = _lookup(raw)
    if key.scope != ApiKey.Scope.SITE:
        raise errors.forbidden("Only a site key (pk_…) may be used from a web page; never put a secret key there.")
    return key


def site_key(request: HttpRequest, raw: str | None, *, also: str | None = None) -> ApiKey:
    """A public site key, used from one of its source's allowed origins (or from origin ``also``: our own hosted
    form pages). Raises 401/403 ApiErrors."""
    key = public_key(raw)
    origin = origin_of(request)
    if origin is None or not (key.source.allows_origin(origin) or (also and origin.lower() == also.lower())):
        raise errors.forbidden(f"The origin {origin or '(none)'} is not allowed for this site key.")
    return key
