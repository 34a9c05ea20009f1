"""baton.js in headless Chromium against the real API.

Host pages come from a small HTTP server of the test's own on 127.0.0.1 (the allowed origin); the same
server reached as ``localhost`` is a foreign origin. Both are loopback, as Chromium's Private Network
Access rules want for a page that talks to a loopback server.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings

from leads.models import ApiKey, Event, Source
from tests.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOP = "http://shop.test"


class Pages(ThreadingHTTPServer):
    html: dict[str, str]


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.html.get(self.path.split("?")[0], "").encode()
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def host_pages():
    server = Pages(("127.0.0.1", 0), PageHandler)
    server.html = {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def shop(host_pages):
    return f"http://127.0.0.1:{host_pages.server_address[1]}"


def host_page(script_src: str, key: str, body: str = "") -> str:
    return f"""<!doctype html><html><head><title>Pricing · Shop</title>
    <script src="{script_src}" data-key="{key}" defer></script></head><body>{body}</body></html>"""


def serve(page, url: str, html: str) -> None:
    page.route(url, lambda route: route.fulfill(status=200, content_type="text/html", body=html))


@pytest.fixture
def shop_key(db, shop):
    source = Source.objects.create(name="shop", kind=Source.Kind.WEBSITE, allowed_origins=[shop, SHOP])
    return ApiKey.issue(source=source, scope=ApiKey.Scope.SITE)[1]


def test_a_page_view_arrives_with_its_utm_fields(page, live_server, host_pages, shop, shop_key):
    host_pages.html["/pricing"] = host_page(f"{live_server.url}/static/baton.js", shop_key)

    page.goto(f"{shop}/pricing?utm_source=newsletter&utm_campaign=fall")

    event = wait_for(lambda: Event.objects.filter(type="page_view").first())
    assert event.properties["path"] == "/pricing"
    assert event.properties["title"] == "Pricing · Shop"
    assert event.properties["utm_source"] == "newsletter"
    assert event.properties["utm_campaign"] == "fall"
    assert event.visitor_id == page.evaluate("window.baton.visitorId")
    assert event.contact is None


def test_identify_joins_the_visitor_to_a_contact(page, live_server, host_pages, shop, shop_key):
    host_pages.html["/"] = host_page(f"{live_server.url}/static/baton.js", shop_key)
    page.goto(f"{shop}/")
    wait_for(lambda: Event.objects.filter(type="page_view").exists())

    page.evaluate("window.baton.identify('Ada@Example.com', {first_name: 'Ada'})")

    wait_for(lambda: Event.objects.filter(type="identify").exists())
    assert set(Event.objects.values_list("contact__email", flat=True)) == {"ada@example.com"}
    assert Event.objects.get(type="page_view").contact.first_name == "Ada"


def test_a_page_on_a_foreign_origin_is_refused(page, live_server, host_pages, shop_key):
    host_pages.html["/"] = host_page(f"{live_server.url}/static/baton.js", shop_key)
    statuses = []

    def observe(route):  # pass the request on, and note what the server answered
        response = route.fetch()
        statuses.append(response.status)
        route.fulfill(response=response)

    page.route("**/api/v1/collect**", observe)
    page.goto(f"http://localhost:{host_pages.server_address[1]}/")
    for _ in range(100):
        if statuses:
            break
        page.wait_for_timeout(100)

    assert statuses[0] == 403
    assert not Event.objects.exists()


def test_the_snippet_never_throws_into_the_page_when_the_server_is_down(page, shop_key):
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    snippet = (Path(settings.BASE_DIR) / "static" / "baton.js").read_text()
    page.route(
        "http://crm.down/static/baton.js",
        lambda route: route.fulfill(status=200, content_type="text/javascript", body=snippet),
    )
    page.route("http://crm.down/api/**", lambda route: route.abort("connectionrefused"))
    serve(
        page,
        f"{SHOP}/",
        host_page(
            "http://crm.down/static/baton.js",
            shop_key,
            body="""
        <script>
          window.addEventListener('DOMContentLoaded', function () {
            window.baton.track('page_view', {path: '/again'});
            window.baton.identify(undefined, 42);
            window.baton.track();
            window.hostStillRuns = true;
          });
        </script>""",
        ),
    )

    page.goto(f"{SHOP}/")
    page.wait_for_function("window.hostStillRuns === true")
    page.wait_for_timeout(1500)  # let the snippet try (and fail) to send, and schedule its retry

    assert errors == []
    assert page.evaluate("JSON.parse(localStorage.getItem('baton_queue')).length") >= 2  # kept for retrying


def test_a_form_posting_to_a_hosted_form_carries_the_visitor_id(page, live_server, host_pages, shop, shop_key):
    form = (
        f'<form id="f" method="post" action="{live_server.url}/f/demo"><input name="_key" value="{shop_key}">'
        '<input name="email" value="ada@example.com"><button>Send</button></form>'
        '<form id="g" method="post" action="https://elsewhere.test/f/demo"></form>'
    )
    host_pages.html["/"] = host_page(f"{live_server.url}/static/baton.js", shop_key, body=form)
    page.goto(f"{shop}/")
    wait_for(lambda: Event.objects.filter(type="page_view").exists())
    visitor = page.evaluate("window.baton.visitorId")

    page.click("#f button")

    submitted = wait_for(lambda: Event.objects.filter(type="form_submit").first())
    assert submitted.visitor_id == visitor
    assert Event.objects.get(type="page_view").contact.email == "ada@example.com"  # the earlier visit joined


def test_the_served_snippet_is_the_source_minified_and_under_3_kb():
    from crm.management.commands.build_snippet import SERVED, minified

    assert SERVED.read_text() == minified(), "run: make manage ARGS=build_snippet"
    assert len(SERVED.read_bytes()) < 3 * 1024
