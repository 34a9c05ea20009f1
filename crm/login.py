"""Logging in: case-insensitive emails, failed attempts throttled per account and per address; and password
resets, throttled the same way, answering alike whether the address belongs to anyone."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from functools import cache
from typing import Any

import redis
from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.http import HttpRequest

from crm.redis_client import get_redis

log = logging.getLogger(__name__)

# KEYS: the account's and the address's counters; ARGV[1] their lifetime. Counts the attempt on both first,
# so that parallel attempts cannot all slip under a limit. Returns both counts.
COUNT_ATTEMPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if counts[i] == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return counts
"""


@cache
def _count_attempt_script() -> redis.commands.core.Script:
    return get_redis().register_script(COUNT_ATTEMPT)


def _keys(username: str, address: str) -> list[str]:
    account = hashlib.sha256(username.encode()).hexdigest()[:32]  # no emails in Redis
    return [f"login:account:{account}", f"login:address:{address}"]


class LoginForm(AuthenticationForm):
    """Django's login form, with the email compared case-insensitively (usernames are stored lower-case)
    and at most LOGIN_ATTEMPTS_PER_ACCOUNT (per address: LOGIN_ATTEMPTS_PER_ADDRESS) attempts that do
    not succeed within LOGIN_LOCKOUT_SECONDS. The refusal is the same for accounts that do not exist."""

    error_messages = AuthenticationForm.error_messages | {
        "invalid_login": "Please enter a correct email and password.",
        "throttled": "Too many attempts to log in. Wait %(minutes)s minutes, then try again.",
    }

    def clean_username(self) -> str:
        return self.cleaned_data["username"].strip().lower()

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if username is None or not self.cleaned_data.get("password"):
            return self.cleaned_data
        keys = _keys(username, _address(self.request))
        counts = self._count_attempt(keys)
        if counts and (
            counts[0] > settings.LOGIN_ATTEMPTS_PER_ACCOUNT or counts[1] > settings.LOGIN_ATTEMPTS_PER_ADDRESS
        ):
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise forms.ValidationError(self.error_messages["throttled"], code="throttled", params={"minutes": minutes})
        super().clean()  # raises for a wrong email or password: the attempt stays counted
        self._forget(keys)
        return self.cleaned_data

    @staticmethod
    def _count_attempt(keys: list[str]) -> list[int] | None:
        try:
            return [int(n) for n in _count_attempt_script()(keys=keys, args=[settings.LOGIN_LOCKOUT_SECONDS])]
        except (redis.RedisError, OSError) as e:  # fail open: people can still log in while Redis is down
            log.warning("login throttle skipped: %s", e)
            return None

    @staticmethod
    def _forget(keys: list[str]) -> None:
        """A success clears the account's count and takes its attempt off the address's."""
        with contextlib.suppress(redis.RedisError, OSError):
            get_redis().pipeline().delete(keys[0]).decr(keys[1]).execute()


def _address(request: HttpRequest | None) -> str:
    return (request.META.get("REMOTE_ADDR") if request else None) or "unknown"


class ResetForm(PasswordResetForm):
    """Django's password reset, at most RESET_REQUESTS_PER_ACCOUNT emails per address asked for and
    RESET_REQUESTS_PER_ADDRESS requests per client per lockout window. Over the account's limit nothing is sent,
    and the page says the same as ever (it never tells whether an address has an account)."""

    error_messages = {"throttled": "Too many requests. Wait %(minutes)s minutes, then try again."}

    def __init__(self, *args, request: HttpRequest | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    def clean(self) -> dict[str, Any]:
        email = (self.cleaned_data.get("email") or "").strip().lower()
        counts = (
            LoginForm._count_attempt([f"reset:{k}" for k in _keys(email, _address(self.request))]) if email else None
        )
        self.throttled_account = bool(counts and counts[0] > settings.RESET_REQUESTS_PER_ACCOUNT)
        if counts and counts[1] > settings.RESET_REQUESTS_PER_ADDRESS:
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise forms.ValidationError(self.error_messages["throttled"], code="throttled", params={"minutes": minutes})
        return self.cleaned_data

    def save(self, *args, **kwargs) -> None:
        if not self.throttled_account:
            super().save(*args, **kwargs)
