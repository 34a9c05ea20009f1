"""Users and their roles."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.db import transaction
from django.utils.crypto import constant_time_compare, salted_hmac

from crm.roles import ADMIN, ROLES


def create_user(*, email: str, password: str, role: str, name: str = "", validate: bool = True) -> AbstractUser:
    """Create the user ``email`` in ``role``, or update an existing one's password, name and role.

    Admins also get Django's admin (staff and superuser). Safe to run twice. Raises ``ValueError`` for an
    unknown role and ``django.core.exceptions.ValidationError`` for a weak password.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    email = email.strip().lower()
    first, _, last = name.partition(" ")
    User = get_user_model()
    with transaction.atomic():
        user, _ = User.objects.get_or_create(username=email, defaults={"email": email})
        if validate:
            validate_password(password, user)
        user.email = email
        user.first_name, user.last_name = first, last
        user.set_password(password)
        user.save()
        set_role(user=user, role=role)
    return user


INVITE_DAYS = 7
_INVITES = signing.TimestampSigner(salt="baton.invite")


def invite(*, email: str, name: str, role: str) -> AbstractUser:
    """A user who cannot log in until they choose a password through their invitation (``invite_token``).
    An existing address keeps its account and password; its name and role change. Raises ValueError for an
    unknown role."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    email = email.strip().lower()
    first, _, last = name.strip().partition(" ")
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=email, defaults={"email": email})
        if created:
            user.set_unusable_password()
        user.first_name, user.last_name, user.is_active = first, last, True
        user.save()
        set_role(user=user, role=role)
    return user


def set_role(*, user: AbstractUser, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    user.is_staff = user.is_superuser = role == ADMIN
    user.save(update_fields=["is_staff", "is_superuser"])
    user.groups.set([Group.objects.get_or_create(name=role)[0]])


def invite_token(user: AbstractUser) -> str:
    """A link's token, good for INVITE_DAYS and only until the user has a password (or a new invitation's
    password change)."""
    return _INVITES.sign(f"{user.pk}:{_fingerprint(user)}")


def invited_user(token: str) -> AbstractUser | None:
    """The user an invitation is for, or None when it is forged, expired, used or revoked."""
    try:
        pk, fingerprint = _INVITES.unsign(token, max_age=timedelta(days=INVITE_DAYS)).split(":", 1)
    except (signing.BadSignature, ValueError):
        return None
    user = get_user_model().objects.filter(pk=pk, is_active=True).first() if pk.isdigit() else None
    if user is None or user.has_usable_password() or not constant_time_compare(fingerprint, _fingerprint(user)):
        return None
    return user


def _fingerprint(user: AbstractUser) -> str:
    """Changes when the password does (so a used link stops working) and on every new invitation."""
    return salted_hmac("baton.invite", f"{user.password}{user.date_joined.timestamp()}").hexdigest()[:16]


def revoke_invitation(*, user: AbstractUser) -> None:
    """A pending invitation stops working: a new unusable password changes the fingerprint."""
    if not user.has_usable_password():
        user.set_unusable_password()
        user.save(update_fields=["password"])
