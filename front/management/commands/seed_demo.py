from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils import timezone

from crm import demo
from crm.models import Contact
from handoff.demo import seed_history
from leads.demo import seed_events
from scoring.services import rescore_all_stale


class Command(BaseCommand):
    help = (
        "Load demo data: users per role, companies, contacts, their activity and scores. Deterministic with "
        "--seed. Notifies nobody."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--contacts", type=int, default=2000)
        parser.add_argument("--events", type=int, default=50_000)
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when contacts already exist")

    def handle(self, *, seed: int, contacts: int, events: int, if_empty: bool, **options):
        if if_empty and Contact.objects.exists():
            self.stdout.write("Demo data already loaded.")
        else:
            result = demo.seed(contacts=contacts, seed=seed)
            stored = seed_events(count=events, seed=seed, now=timezone.now())
            rescore_all_stale(notify=False)  # scored here, so that the worker finds nothing to announce
            pasts = seed_history(count=max(1, contacts // 5), seed=seed, now=timezone.now())
            self.stdout.write(
                f"Demo data: {result.companies} companies, {result.contacts} contacts, {stored} events, "
                f"{pasts} leads with 120 days of history for the reports."
            )
        self.stdout.write(f"Demo logins (password {demo.DEMO_PASSWORD!r}):")
        for email, name, role in demo.DEMO_USERS:
            self.stdout.write(f"  {role:<10} {email:<16} {name}")
