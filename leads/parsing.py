"""From a request body to validated events, or the API error that says what is wrong with it."""

from __future__ import annotations

import json
import math
from typing import Any

from django.http import HttpRequest
from pydantic import BaseModel, ValidationError

from leads import errors
from leads.schemas import MAX_EVENTS, MAX_PROPERTIES_BYTES, EventIn

MAX_BODY_BYTES = 1024 * 1024


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("numbers must be finite")
    return number


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def read_body(request: HttpRequest, *, media_types: tuple[str, ...]) -> Any:
    """The parsed JSON body. Raises ApiError: 415 for another media type, 413 over 1 MiB, 400 malformed."""
    return parse_json(read_raw(request, media_types=media_types))


def read_raw(request: HttpRequest, *, media_types: tuple[str, ...], limit: int = MAX_BODY_BYTES) -> bytes:
    """The body's bytes, of one of ``media_types`` and at most ``limit`` long. Raises ApiError 415 or 413."""
    media_type = request.content_type.lower()
    if media_type not in media_types:
        raise errors.ApiError(
            415, "unsupported_media_type", f"Send the body as {' or '.join(media_types)}, not '{media_type}'."
        )
    too_large = f"The body is over {limit // 1024 // 1024} MiB; send fewer events per request."
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
        raise errors.too_large(too_large)
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise errors.too_large(too_large)
    return raw


def parse_json(raw: bytes) -> Any:
    """JSON as we accept it (finite numbers only). Raises a 400 ApiError."""
    try:
        return json.loads(raw.decode("utf-8"), parse_float=_finite, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise errors.malformed("The body is not UTF-8 text.") from None
    except RecursionError:
        raise errors.malformed("The body nests too deeply to be an event.") from None
    except ValueError as e:  # JSONDecodeError, huge integers, NaN/Infinity
        raise errors.malformed(f"The body is not valid JSON: {e}.") from None


# One encoder for every event: json.dumps with these options makes a new one per call (half a batch's size checks).
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _size(properties: dict) -> int:
    return len(_COMPACT.encode(properties).encode("utf-8", "surrogatepass"))


# Pydantic's wording where a person would put it differently.
MESSAGES = {"extra_forbidden": "unknown field; check its spelling", "missing": "is required"}


def _details(error: ValidationError, index: int | None) -> list[dict]:
    return [
        {
            "index": index,
            "field": ".".join(str(part) for part in problem["loc"]) or None,
            "message": MESSAGES.get(problem["type"], problem["msg"]),
        }
        for problem in error.errors(include_url=False)
    ]


def validate(model: type[BaseModel], data: Any, *, index: int | None = None) -> tuple[BaseModel | None, list[dict]]:
    """Validate one object against ``model``; returns it, or None with the problems found."""
    if not isinstance(data, dict):
        return None, [{"index": index, "field": None, "message": "must be a JSON object"}]
    try:
        return model.model_validate(data), []
    except ValidationError as e:
        return None, _details(e, index)


def parse_events(body: Any) -> list[EventIn]:
    """Events from an events/collect body: one event object or ``{"events": [...]}``. All or nothing."""
    if not isinstance(body, dict):
        raise errors.malformed('The body must be a JSON object: one event, or {"events": [...]}.')
    if "events" in body:
        if set(body) != {"events"}:
            extra = sorted(set(body) - {"events"})
            raise errors.invalid([{"index": None, "field": f, "message": "unknown field"} for f in extra])
        items = body["events"]
        if not isinstance(items, list) or not items:
            raise errors.invalid([{"index": None, "field": "events", "message": "must be a list of 1 to 1,000 events"}])
        if len(items) > MAX_EVENTS:
            raise errors.too_large(f"{len(items)} events in one request; send at most {MAX_EVENTS:,}.")
    else:
        items = [body]
    for index, item in enumerate(items):
        properties = item.get("properties") if isinstance(item, dict) else None
        if isinstance(properties, dict) and _size(properties) > MAX_PROPERTIES_BYTES:
            raise errors.too_large(f"Event {index} has properties over 16 KiB; send less data per event.")
    events, details = [], []
    for index, item in enumerate(items):
        event, problems = validate(EventIn, item, index=index)
        if event is not None:
            problems = [{"index": index, "field": f, "message": m} for f, m in event.problems()]
            events.append(event)
        details.extend(problems)
    if details:
        raise errors.invalid(details)
    return events
