from __future__ import annotations

import os
import secrets
import subprocess
import sys

from django.conf import settings


def test_check_deploy_is_clean_with_production_settings():
    dev_only = {"DEBUG", "HTTPS", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dev_only} | {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "crm.example.com",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_settings_refuse_to_start_without_a_secret_key_in_production():
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True
    )

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_a_malformed_boolean_setting_is_refused():
    env = dict(os.environ, DEBUG="maybe")

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True
    )

    assert "DEBUG must be true or false" in result.stderr


def test_the_web_app_keeps_what_it_loaded_out_of_the_collectors_sight():
    """A full garbage collection in a web worker scans only what requests leave behind (crm.wsgi freezes the rest):
    one that scanned all of Django took a leads page 55 ms longer."""
    result = subprocess.run(
        [sys.executable, "-c", "import gc, crm.wsgi; print(gc.get_freeze_count())"],
        cwd=settings.BASE_DIR,
        env=dict(os.environ, SECRET_KEY=secrets.token_urlsafe(50)),
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 50_000  # Django and the apps: ~140,000 objects
