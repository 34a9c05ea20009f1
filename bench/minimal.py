"""The raw limit beside one event per request: a minimal Django app (one view, one INSERT, no middleware, no
parsing beyond json.loads) served by the same gunicorn. ``gunicorn bench.minimal:application``."""

from __future__ import annotations

import json
import os

import dj_database_url
from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="bench",
    DATABASES={"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)},
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)

from django.core.wsgi import get_wsgi_application  # noqa: E402  (after settings)
from django.db import connection  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


@csrf_exempt
def event(request):
    body = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO leads_event (source_id, client_id, contact_id, visitor_id, type, occurred_at, received_at,"
            " properties, channel) VALUES (%s, %s, NULL, '', %s, now(), now(), %s, '') ON CONFLICT DO NOTHING",
            [int(os.environ["BENCH_SOURCE"]), body["id"], body["type"], json.dumps(body.get("properties", {}))],
        )
    return HttpResponse(b'{"accepted": 1}', status=202, content_type="application/json")


urlpatterns = [path("api/v1/events", event)]
application = get_wsgi_application()
