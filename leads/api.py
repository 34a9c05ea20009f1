"""The public JSON API (v1) for events: /api/v1/events, /collect and /identify, with its OpenAPI document."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from ninja import NinjaAPI, Path, Query
from ninja.errors import ValidationError as NinjaValidationError

from crm import contact_json, csv_export
from crm.models import Contact
from leads import auth, contacts, email_hooks, errors, import_rows, imports, ingest, parsing, ratelimit
from leads.import_forms import ImportOptions
from leads.models import ApiKey, Import
from leads.schemas import (
    Accepted,
    ContactOut,
    ContactPage,
    ContactQuery,
    ErrorOut,
    EventBatch,
    EventIn,
    HookAccepted,
    Identified,
    IdentifyIn,
    ImportOut,
    ImportStarted,
)


class BatonAPI(NinjaAPI):
    # Bodies we parse ourselves are described by these schemas; they join the document's components.
    REQUEST_SCHEMAS = (EventIn, EventBatch, IdentifyIn)

    def get_openapi_schema(self, **kwargs):
        document = super().get_openapi_schema(**kwargs)
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for model in self.REQUEST_SCHEMAS:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            components[model.__name__] = schema
        return document


log = logging.getLogger(__name__)
api = BatonAPI(
    title="Baton API",
    version="1",
    description="Send activity events, identify visitors and read scored contacts. Errors are always "
    '`{"error", "message", "details"}`.',
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)
SITE_KEY_TYPES = {"page_view", "identify", "form_submit"}
ERRORS = dict.fromkeys((400, 401, 403, 413, 415, 429, 503), ErrorOut)


def json_body(*schemas: type, media_type: str = "application/json") -> dict:
    """An OpenAPI requestBody for bodies we parse ourselves (to answer in API.md's error shape)."""
    refs = [{"$ref": f"#/components/schemas/{schema.__name__}"} for schema in schemas]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return {"requestBody": {"required": True, "content": {media_type: {"schema": schema}}}}


@api.exception_handler(errors.ApiError)
def on_api_error(request: HttpRequest, exc: errors.ApiError) -> HttpResponse:
    return exc.response()


@api.exception_handler(NinjaValidationError)
def on_parameter_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    """Query and path parameters that ninja validates are answered in API.md's shape too."""
    details = [
        {"index": None, "field": ".".join(str(p) for p in e["loc"][1:]) or None, "message": e["msg"]}
        for e in exc.errors
    ]
    return errors.invalid(details).response()


@api.exception_handler(DatabaseError)
def on_database_error(request: HttpRequest, exc: DatabaseError) -> HttpResponse:
    if isinstance(exc, OperationalError | InterfaceError):
        return errors.unavailable().response()
    return on_unexpected_error(request, exc)


@api.exception_handler(Exception)
def on_unexpected_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A bug, answered in the API's shape (clients parse JSON) and logged with its traceback."""
    log.exception("unexpected error in %s %s", request.method, request.path)
    return errors.ApiError(500, "internal", "Something went wrong on our side; nothing was stored.").response()


def read_key(request: HttpRequest) -> ApiKey:
    """The read operations' authentication: ninja runs it before parsing parameters, so a request without a
    valid key is a 401/403 whatever else it sends."""
    return auth.bearer_key(request, scope=ApiKey.Scope.READ)


def ingest_key(request: HttpRequest) -> ApiKey:
    return auth.bearer_key(request, scope=ApiKey.Scope.INGEST)


def _accepted(result: ingest.Recorded) -> HttpResponse:
    # json.dumps as is: JsonResponse's encoder class costs a twentieth of a one-event request.
    body = json.dumps({"accepted": result.accepted, "duplicates": result.duplicates})
    return HttpResponse(body, status=202, content_type="application/json")


@contextmanager
def _key_first(request: HttpRequest) -> Iterator[ApiKey]:
    """The ingest key as this process remembers it, for the body's parsing: a request with a bad key is told so
    first, also when this process still remembers the key as valid (looked up again before a body error)."""
    key = auth.bearer_key(request, scope=ApiKey.Scope.INGEST, remembered=True)
    try:
        yield key
    except errors.ApiError:
        auth.bearer_key(request, scope=ApiKey.Scope.INGEST)
        raise


def _as_remembered[T](request: HttpRequest, key: ApiKey, store: Callable[[ApiKey, bool], T]) -> T:
    """``store(key, limit)`` with the request's ingest ``key`` as this process remembers it, taking the rate limit;
    when the store finds the key revoked or its source changed since, or the rate limit refuses it (by the source's
    rate as remembered), with the key looked up again (a 401 once revoked). A stale key's store took the request's
    tokens before it stored nothing: the second takes none when the source and its rate are the same."""
    try:
        return store(key, True)
    except ingest.StaleKey:
        fresh = auth.bearer_key(request, scope=ApiKey.Scope.INGEST)
        # The same lease (source and rate) took them; a new rate starts afresh (ratelimit's leases).
        limit = (fresh.source.pk, fresh.source.rate_limit) != (key.source.pk, key.source.rate_limit)
    except ratelimit.Refused:
        fresh, limit = auth.bearer_key(request, scope=ApiKey.Scope.INGEST), True
    try:
        return store(fresh, limit)
    except ingest.StaleKey:  # changed again, this very moment
        raise errors.unavailable() from None


@api.post("/events", response={202: Accepted, **ERRORS}, openapi_extra=json_body(EventIn, EventBatch), tags=["events"])
def post_events(request: HttpRequest) -> HttpResponse:
    """Send one event, or up to 1,000 as `{"events": [...]}`. Needs an `ingest` key. All or nothing."""
    with _key_first(request) as remembered:
        events = parsing.parse_events(parsing.read_body(request, media_types=("application/json",)))
    result = _as_remembered(
        request,
        remembered,
        lambda key, limit: ingest.record(
            source=key.source, events=events, received_at=timezone.now(), limit=limit, key=key
        ),
    )
    return _accepted(result)


def events_view(request: HttpRequest) -> HttpResponse:
    """POST /api/v1/events answered as its route answers it, errors included: the WSGI handler's short path."""
    try:
        return post_events(request)
    except Exception as exc:
        return api.on_exception(request, exc)


def _cors(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    origin = request.headers.get("Origin")
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


@api.post(
    "/collect",
    response={202: Accepted, **ERRORS},
    openapi_extra=json_body(EventIn, EventBatch, media_type="text/plain"),
    tags=["events"],
)
def collect(request: HttpRequest, key: str) -> HttpResponse:
    """The tracking snippet's endpoint: the events body sent as text/plain with a site key (`?key=pk_…`)."""
    try:
        site_key = auth.site_key(request, key)
        body = parsing.read_body(request, media_types=("text/plain", "application/json"))
        events = parsing.parse_events(body)
        refused = [i for i, e in enumerate(events) if e.type not in SITE_KEY_TYPES]
        if refused:
            raise errors.forbidden(f"A site key may send only {', '.join(sorted(SITE_KEY_TYPES))} events.")
        response = _accepted(ingest.record(source=site_key.source, events=events, received_at=timezone.now()))
    except errors.ApiError as e:
        response = e.response()
        if e.status == 403 and "origin" in e.message:
            return response  # no CORS grant for an origin we refuse
    return _cors(response, request)


@api.api_operation(["OPTIONS"], "/collect", include_in_schema=False)
def collect_preflight(request: HttpRequest) -> HttpResponse:
    response = _cors(HttpResponse(status=204), request)
    response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Content-Type"
    response["Access-Control-Max-Age"] = "86400"
    return response


@api.post("/identify", response={200: Identified, **ERRORS}, openapi_extra=json_body(IdentifyIn), tags=["events"])
def post_identify(request: HttpRequest) -> HttpResponse:
    """Tie an anonymous visitor to a contact (created if needed); its earlier events join the contact."""
    with _key_first(request) as remembered:
        body = parsing.read_body(request, media_types=("application/json",))
        if not isinstance(body, dict):
            raise errors.malformed('The body must be a JSON object: {"visitor_id": …, "email": …}.')
        payload, details = parsing.validate(IdentifyIn, body)
        if payload is None:
            raise errors.invalid(details)
    contact_id, result = _as_remembered(
        request,
        remembered,
        lambda key, limit: ingest.identify(
            source=key.source,
            visitor_id=payload.visitor_id,
            email=payload.email,
            contact=payload.contact,
            at=timezone.now(),
            limit=limit,
            key=key,
        ),
    )
    return JsonResponse({"contact_id": contact_id, "events_attached": result.attached})


@api.post("/hooks/{provider}", response={202: HookAccepted, **ERRORS}, tags=["events"])
def email_hook(request: HttpRequest, provider: Literal["sendgrid", "mailgun", "postmark"], key: str) -> HttpResponse:
    """An email tool's own webhook payload (SendGrid, Mailgun, Postmark) with an `ingest` key in the address:
    opens, clicks, bounces, unsubscribes and spam complaints become events; the provider's ids dedupe."""
    api_key = auth.query_key(key, scope=ApiKey.Scope.INGEST)
    raw = parsing.read_raw(request, media_types=("application/json",), limit=email_hooks.MAX_HOOK_BYTES)
    body = parsing.parse_json(raw)
    email_hooks.verify(provider, source=api_key.source, request=request, raw=raw, body=body, now=time.time())
    events, ignored = email_hooks.events(provider, body)
    result = ingest.record(source=api_key.source, events=events, received_at=timezone.now())
    return JsonResponse({"accepted": result.accepted, "duplicates": result.duplicates, "ignored": ignored}, status=202)


@api.get("/contacts", response={200: ContactPage, **ERRORS}, tags=["contacts"], by_alias=True, auth=read_key)
def list_contacts(request: HttpRequest, filters: Query[ContactQuery]) -> HttpResponse:
    """Contacts by id, filtered; follow `next_cursor` for the next page. Needs a `read` key."""
    rows, next_cursor = contacts.page(filters)
    return JsonResponse({"results": [contact_json.of(c) for c in rows], "next_cursor": next_cursor})


@api.get(
    "/contacts/export.csv",
    response={200: None, **ERRORS},
    tags=["contacts"],
    auth=read_key,
    openapi_extra={"responses": {"200": {"description": "CSV, one header row", "content": {"text/csv": {}}}}},
)
def export_contacts(request: HttpRequest, filters: Query[ContactQuery]) -> HttpResponse:
    """Every contact the filters match, as streamed CSV (formula-like cells prefixed with '). Needs a `read` key."""
    return csv_export.response(contacts.filtered(filters, Contact.objects.scored()), filename="contacts.csv")


@api.get(
    "/contacts/{contact_id}",
    response={200: ContactOut, 404: ErrorOut, **ERRORS},
    tags=["contacts"],
    by_alias=True,
    auth=read_key,
)
def get_contact(request: HttpRequest, contact_id: Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]) -> HttpResponse:
    """One contact with its score breakdown and stage history. Needs a `read` key."""
    contact = contacts.contacts().filter(pk=contact_id).first()
    if contact is None:
        raise errors.ApiError(404, "not_found", f"No contact has id {contact_id}.")
    return JsonResponse(contact_json.of(contact))


MULTIPART_SLACK = 1024 * 1024  # boundaries and the other fields, beside the file
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "CSV, UTF-8, up to 50 MiB"},
                        "mapping": {"type": "string", "description": 'JSON {"CSV header": "field"}; others auto-match'},
                        "mode": {"type": "string", "enum": ["create", "update", "upsert"], "default": "upsert"},
                        "overwrite": {"type": "boolean", "default": False},
                        "dry_run": {"type": "boolean", "default": False},
                    },
                }
            }
        },
    }
}


@api.post("/imports", response={202: ImportStarted, **ERRORS}, tags=["imports"], openapi_extra=IMPORT_BODY)
def post_import(request: HttpRequest) -> HttpResponse:
    """Import contacts from a CSV file, in the background; poll `GET /imports/{id}`. Needs an `ingest` key.
    Rows with errors are skipped and listed, the rest imported; an import notifies nobody."""
    key = auth.bearer_key(request, scope=ApiKey.Scope.INGEST)
    if request.content_type.lower() != "multipart/form-data":
        raise errors.ApiError(415, "unsupported_media_type", "Send the file as multipart/form-data (field 'file').")
    too_large = errors.too_large("The file is over 50 MiB; split it and import the parts.")
    if int(request.META.get("CONTENT_LENGTH") or 0) > import_rows.MAX_FILE_BYTES + MULTIPART_SLACK:
        raise too_large
    upload = request.FILES.get("file")
    if upload is None:
        raise errors.invalid([{"index": None, "field": "file", "message": "is required: the CSV file to import"}])
    if upload.size > import_rows.MAX_FILE_BYTES:
        raise too_large
    options = ImportOptions(request.POST)
    if not options.is_valid():
        raise errors.form_invalid(options)
    try:
        checked = import_rows.scan(upload)
    except import_rows.FileRefused as e:
        raise errors.invalid([{"index": None, "field": "file", "message": str(e)}]) from None
    problems = import_rows.mapping_problems(checked.headers, options.cleaned_data["mapping"])
    if problems:
        raise errors.invalid([{"index": None, "field": field, "message": message} for field, message in problems])
    with transaction.atomic():
        stored = imports.store_file(upload=upload, name=upload.name or "import.csv", checked=checked)
        run = imports.create(
            file=stored,
            mapping=options.cleaned_data["mapping"],
            mode=options.cleaned_data["mode"],
            overwrite=options.cleaned_data["overwrite"],
            dry_run=options.cleaned_data["dry_run"],
            start=True,
            source=key.source,
        )
    return JsonResponse({"id": run.pk}, status=202)


@api.get("/imports/{import_id}", response={200: ImportOut, 404: ErrorOut, **ERRORS}, tags=["imports"], auth=ingest_key)
def get_import(request: HttpRequest, import_id: Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]) -> HttpResponse:
    """An import's progress and outcome: counts and the rows skipped, with why. Needs an `ingest` key of the
    source that started it."""
    run = Import.objects.select_related("file").filter(pk=import_id, source=request.auth.source).first()
    if run is None:
        raise errors.ApiError(404, "not_found", f"No import of this source has id {import_id}.")
    return JsonResponse(imports.as_json(run))
