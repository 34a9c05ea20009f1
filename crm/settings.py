"""Baton's one settings module, configured from the environment.

Nothing else in the project reads ``os.environ``. Defaults are safe: DEBUG is off, cookies are secure and
HTTPS is enforced unless ``HTTPS=false`` is given (the local launcher does that for http://127.0.0.1).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)
SECRET_KEY = envstr("SECRET_KEY") or ("insecure-debug-only-key" if DEBUG else None)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set (or DEBUG=true for local development)")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

# Everything HTTPS-related follows one switch; production keeps the default.
HTTPS = envbool("HTTPS", True)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "ninja",
    "crm",
    "leads",
    "scoring",
    "handoff",
    "front",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "crm.roles.role_context",
                "handoff.context.unclaimed_badge",
            ],
        },
    },
]

DATABASE_URL = envstr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/baton")
# Sync gunicorn workers and prefork Celery children each use one connection at a time: persistent
# connections serve them well. DATABASE_POOL=true switches to psycopg's pool (for threaded servers).
# A kept connection is checked before a request's first query (one round trip, SELECT 1): after a PostgreSQL
# restart every worker's connection is dead, and each failed its next request (a 500 page, a 503 answer).
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
# Server-side binding with prepared statements: the ingest statement is planned once per connection, not on
# every request. (Turn off behind a transaction-pooling PgBouncer, which cannot keep prepared statements.)
DATABASES["default"]["OPTIONS"] = (
    {"server_side_binding": True, "prepare_threshold": 5} if envbool("DATABASE_PREPARED_STATEMENTS", True) else {}
)
# No JIT: compiling the scoring statements' expressions cost more than it saved (150 ms of a 1.1 s chunk).
DATABASES["default"]["OPTIONS"]["options"] = "-c jit=off"
if envbool("DATABASE_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 1, "max_size": envint("DATABASE_POOL_SIZE", 8)}

REDIS_URL = envstr("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
# Failed logins: at most this many attempts per account (per address) within the lockout window.
LOGIN_ATTEMPTS_PER_ACCOUNT = envint("LOGIN_ATTEMPTS_PER_ACCOUNT", 5)
LOGIN_ATTEMPTS_PER_ADDRESS = envint("LOGIN_ATTEMPTS_PER_ADDRESS", 30)
# Password reset emails: at most this many per account asked for, and requests per address, per window.
RESET_REQUESTS_PER_ACCOUNT = envint("RESET_REQUESTS_PER_ACCOUNT", 3)
RESET_REQUESTS_PER_ADDRESS = envint("RESET_REQUESTS_PER_ADDRESS", 10)
PASSWORD_RESET_TIMEOUT = envint("PASSWORD_RESET_TIMEOUT", 3 * 3600)  # a reset link works for 3 hours
LOGIN_LOCKOUT_SECONDS = envint("LOGIN_LOCKOUT_SECONDS", 900)
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Baton <baton@localhost>")
EMAIL_FILE_PATH = envstr("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))  # for the file-based backend
# Outgoing webhooks to private, loopback or link-local addresses (and plain http to this machine): refused
# unless this is on (development; `make run` turns it on). Production keeps it off: no SSRF.
WEBHOOKS_ALLOW_PRIVATE = envbool("WEBHOOKS_ALLOW_PRIVATE", DEBUG)
# Certificates webhook receivers are verified against (a file of PEM certificates); empty: the system's.
WEBHOOKS_CA_BUNDLE = envstr("WEBHOOKS_CA_BUNDLE") or None
# Where people reach Baton: the links in emails.
BASE_URL = envstr("BASE_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
}

# Celery: JSON only; a task is acknowledged after it ran, and a task whose worker died goes back to the
# queue. Tasks may therefore run twice and must be idempotent.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
# An unacknowledged task of a worker that vanished comes back after this; it must outlast any task's time
# limit (the full rescore's is 3,700 s), or a long task is delivered twice mid-flight. Lost full rescores
# come back sooner on their own (scoring.services.resume_stalled_runs); lost nudges through the sweeper.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3900}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery 5.7.0's consumer closes a broken broker connection twice and dies of it when Redis restarts under
# load (AttributeError 'NoneType' … 'hostname'); ours lets go of it once (crm.celery.Consumer).
CELERY_WORKER_CONSUMER = "crm.celery:Consumer"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / "var" / "celerybeat-schedule")

# The whole beat schedule, in one place.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "sweep-stale-contacts": {"task": "scoring.tasks.sweep_stale", "schedule": 30.0},
    "refresh-decay": {"task": "scoring.tasks.refresh_decay", "schedule": 3600.0},
    "enforce-handoff-sla": {"task": "handoff.tasks.enforce_sla", "schedule": 60.0},
    "deliver-webhooks": {"task": "crm.tasks.deliver_webhooks", "schedule": 5.0},
}
HANDOFF_CLAIM_LIMIT = envint("HANDOFF_CLAIM_LIMIT", 25)
# Rescores coalesce: a contact has at most one waiting task, which runs this many seconds after it is asked for.
RESCORE_DELAY = float(envstr("RESCORE_DELAY", "0.2"))
RESCORE_KEY_TTL = 30
RESCORE_BUSY_MS = 2000  # a contact asked for again within this is busy: its rescore waits RESCORE_DELAY

# A worker counts as alive while its heartbeat (every WORKER_HEARTBEAT_SECONDS) is younger than this.
WORKER_HEARTBEAT_SECONDS = 10
WORKER_HEARTBEAT_TTL = 30
