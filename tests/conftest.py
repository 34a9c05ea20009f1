"""Personas and real infrastructure for the tests.

Mia is a marketer, Sam and Ria are sales reps, Ada is an admin, and Nick has an account but no role.
The ``celery_worker`` fixture runs a real ``celery worker`` process against the test database and Redis.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from crm.accounts import create_user
from crm.celery import HEARTBEAT_KEY
from crm.redis_client import get_redis

PASSWORD = "correct-horse-battery"
CHROMIUM = "/usr/bin/chromium"
# Chromium runs as root here, on a machine with no route out: the flags keep it from dialling home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(autouse=True)
def _unhashed_static_for_the_live_server(request, settings):
    """The live server serves static files from the finders, which know no hashed (manifest) names."""
    if "live_server" in request.fixturenames:
        settings.STORAGES = settings.STORAGES | {
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
        }


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# Data that migrations create and the product relies on, by the migration functions that make it.
REFERENCE_DATA = (
    ("crm.migrations.0002_role_groups", "create_groups"),
    ("leads.migrations.0002_default_forms", "create_forms"),
    ("scoring.migrations.0002_default_criteria", "create_version_1"),
    ("scoring.migrations.0006_live_scores", "live_is_active"),
    ("crm.migrations.0016_breakdown_read_from_facts", "write_legends"),
)


def restore_reference_data() -> None:
    from django.apps import apps

    for module, function in REFERENCE_DATA:
        getattr(importlib.import_module(module), function)(apps, None)


@pytest.fixture(autouse=True)
def _reference_data(request):
    """Transactional tests end by emptying every table, migration-made rows included: before each test
    that uses the database, put back what is missing (idempotent, a few queries)."""
    names = set(request.fixturenames)
    if request.node.get_closest_marker("django_db") or {"db", "transactional_db", "live_server"} & names:
        request.getfixturevalue("_django_db_helper")
        restore_reference_data()


@pytest.fixture(scope="session", autouse=True)
def _clean_redis():
    """The tests own the Redis database named by REDIS_URL: start from an empty one."""
    get_redis().flushdb()


def _persona(email: str, name: str, role: str | None):
    if role is None:
        return get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    return create_user(email=email, password=PASSWORD, role=role, name=name, validate=False)


@pytest.fixture
def marketer_mia(db):
    return _persona("mia@baton.test", "Mia Marketer", "marketing")


@pytest.fixture
def rep_sam(db):
    return _persona("sam@baton.test", "Sam Seller", "sales")


@pytest.fixture
def rep_ria(db):
    return _persona("ria@baton.test", "Ria Rep", "sales")


@pytest.fixture
def admin_ada(db):
    return _persona("ada@baton.test", "Ada Admin", "admin")


@pytest.fixture
def roleless_nick(db):
    return _persona("nick@baton.test", "Nick Nobody", None)


def database_url(settings_dict: dict) -> str:
    host = quote(settings_dict["HOST"] or "", safe="")
    port = f":{settings_dict['PORT']}" if settings_dict["PORT"] else ""
    auth = quote(settings_dict["USER"] or "", safe="")
    if settings_dict.get("PASSWORD"):
        auth += ":" + quote(settings_dict["PASSWORD"], safe="")
    return f"postgres://{auth}@{host}{port}/{settings_dict['NAME']}"


@contextlib.contextmanager
def running_worker(
    *, concurrency: int = 2, queue: str | None = None, redis_url: str | None = None
) -> Iterator[subprocess.Popen]:
    """A real ``celery worker`` process on the test database (and Redis, or the one at ``redis_url``),
    yielded once its heartbeat is seen."""
    hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "crm",
        "worker",
        "-l",
        os.environ.get("TEST_WORKER_LOG", "warning"),
        "-c",
        str(concurrency),
        "-n",
        hostname,
        "--without-gossip",
        "--without-mingle",
        *(["-Q", queue] if queue else []),
    ]
    # The tests' webhook receivers listen on this machine; the worker's emails are files a test can read.
    mail_dir = Path(settings.BASE_DIR) / "var" / "test-mail" / hostname.split("@")[0]
    env = dict(
        os.environ,
        DATABASE_URL=database_url(connection.settings_dict),
        WEBHOOKS_ALLOW_PRIVATE="true",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail_dir),
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    heartbeats = redis.Redis.from_url(redis_url) if redis_url else get_redis()
    proc = subprocess.Popen(command, cwd=Path(settings.BASE_DIR), env=env)
    proc.mail_dir = mail_dir
    try:
        deadline = time.monotonic() + 30
        while heartbeats.zscore(HEARTBEAT_KEY, hostname) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Celery worker did not start")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """The suite's worker, shared by every test whose point is a task's effect."""
    with running_worker() as proc:
        yield proc


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("BATON_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def wait_for(condition, timeout: float = 15.0):
    """Poll ``condition`` until it returns something truthy (which is returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


@contextlib.contextmanager
def plans_of_statements() -> Iterator[list[str]]:
    """The plans of the statements this connection runs in the block, nested ones included (auto_explain, sent
    as notices), each with its query text."""
    plans: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_level = notice;"
            " SET auto_explain.log_nested_statements = on"
        )

    def explained(diagnostic) -> None:
        plans.append(diagnostic.message_primary or "")

    connection.connection.add_notice_handler(explained)
    try:
        yield plans
    finally:
        connection.connection.remove_notice_handler(explained)
        with connection.cursor() as cursor:
            cursor.execute("SET auto_explain.log_min_duration = -1")


@pytest.fixture
def signed_in(browser, live_server):
    """signed_in(user): a page in a browser context of its own, with that user's session. The contexts close
    with the test, so that no page of it keeps polling the (session-wide) live server afterwards."""
    from django.test import Client

    contexts = []

    def open_page(user):
        client = Client()
        client.force_login(user)
        context = browser.new_context()
        contexts.append(context)
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
