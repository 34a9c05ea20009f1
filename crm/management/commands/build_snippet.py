"""Write /static/baton.js: the tracking snippet's source (static/src/baton.js) minified."""

from __future__ import annotations

from pathlib import Path

import rjsmin
from django.conf import settings
from django.core.management.base import BaseCommand

SOURCE = Path(settings.BASE_DIR) / "static" / "src" / "baton.js"
SERVED = Path(settings.BASE_DIR) / "static" / "baton.js"


def minified() -> str:
    return rjsmin.jsmin(SOURCE.read_text(), keep_bang_comments=False) + "\n"


class Command(BaseCommand):
    help = "Minify the tracking snippet into static/baton.js (run after editing static/src/baton.js)."

    def handle(self, **options):
        SERVED.write_text(minified())
        self.stdout.write(f"static/baton.js: {SERVED.stat().st_size:,} bytes")
