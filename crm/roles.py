"""The three roles (Django groups) and the server-side checks that enforce them."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

MARKETING = "marketing"
SALES = "sales"
ADMIN = "admin"
ROLES = (MARKETING, SALES, ADMIN)


def roles_of(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The roles a user holds; superusers and admins hold all three. Cached on the user object."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_baton_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        if user.is_superuser or ADMIN in names:
            names = set(ROLES)
        cached = frozenset(names & set(ROLES))
        user._baton_roles = cached
    return cached


def primary_role(user: AbstractBaseUser | AnonymousUser) -> str | None:
    """The role that decides a user's home page: admin before marketing before sales."""
    held = roles_of(user)
    return next((role for role in (ADMIN, MARKETING, SALES) if role in held), None)


def role_required(*allowed: str) -> Callable:
    """View decorator: 403 unless the user holds one of ``allowed`` (login is enforced by middleware)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not roles_of(request.user) & set(allowed):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def role_context(request: HttpRequest) -> dict[str, Any]:
    held = roles_of(request.user)
    return {"roles": held, "primary_role": primary_role(request.user)}
