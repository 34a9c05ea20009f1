from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from crm.accounts import create_user
from crm.roles import ROLES


class Command(BaseCommand):
    help = "Create a user in a role (or update the user's password and role)."

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--name", default="")

    def handle(self, *, role: str, email: str, password: str, name: str, **options):
        try:
            user = create_user(email=email, password=password, role=role, name=name)
        except ValidationError as e:
            raise CommandError(" ".join(e.messages)) from None
        self.stdout.write(f"{user.username} is {role}")
