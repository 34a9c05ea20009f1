"""Users and their roles."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

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
        user.is_staff = user.is_superuser = role == ADMIN
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get_or_create(name=role)[0]])
    return user
