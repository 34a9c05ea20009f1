from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from leads.models import ApiKey, Source, validate_origin


class Command(BaseCommand):
    help = "Create an API key for an event source (created if new). The key is printed once, as the last line."

    def add_arguments(self, parser):
        parser.add_argument("--source", required=True, help="Event source name, e.g. website or mailchimp")
        parser.add_argument("--scope", required=True, choices=[s.value for s in ApiKey.Scope])
        parser.add_argument("--origin", action="append", default=[], help="Allowed origin for a site key (repeat)")

    def handle(self, *, source: str, scope: str, origin: list[str], **options):
        for value in origin:
            try:
                validate_origin(value)
            except ValidationError as e:
                raise CommandError(e.messages[0]) from None
        src, created = Source.objects.get_or_create(name=source)
        if origin:
            src.allowed_origins = sorted(set(src.allowed_origins) | {o.rstrip("/") for o in origin})
            src.save(update_fields=["allowed_origins"])
        _key, raw = ApiKey.issue(source=src, scope=scope)
        self.stderr.write(f"{'Created source' if created else 'Source'} '{src.name}'; new {scope} key (shown once):")
        self.stdout.write(raw)
