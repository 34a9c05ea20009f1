"""Deterministic demo data: companies, contacts and one user per role."""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.db import transaction

from crm.accounts import create_user
from crm.models import Company, Contact

DEMO_PASSWORD = "baton-demo"
DEMO_USERS = (
    ("ada@baton.test", "Ada Admin", "admin"),
    ("mia@baton.test", "Mia Marketer", "marketing"),
    ("sam@baton.test", "Sam Seller", "sales"),
    ("ria@baton.test", "Ria Rep", "sales"),
)
FIRST = (
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Radia",
    "Tim",
    "Frances",
    "Edsger",
    "Hedy",
    "John",
    "Sophie",
    "Niklaus",
    "Anita",
    "Guido",
    "Katherine",
    "Bjarne",
    "Joan",
    "Donald",
    "Lynn",
    "Vint",
    "Karen",
    "Yukihiro",
    "Shafi",
    "Annie",
    "Leslie",
    "Rosalind",
)
LAST = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Perlman",
    "Berners-Lee",
    "Allen",
    "Dijkstra",
    "Lamarr",
    "McCarthy",
    "Wilson",
    "Wirth",
    "Borg",
    "van",
    "Rossum",
    "Johnson",
    "Stroustrup",
    "Clarke",
    "Knuth",
    "Conway",
    "Cerf",
    "Jones",
    "Matsumoto",
    "Goldwasser",
    "Easley",
    "Lamport",
    "Franklin",
)
INDUSTRIES = ("Software", "Manufacturing", "Retail", "Healthcare", "Finance", "Logistics", "Education", "Media")
COUNTRIES = ("United States", "United Kingdom", "Germany", "France", "Netherlands", "Canada", "Spain", "Sweden")
COMPANY_WORDS = (
    "Analytical",
    "Engines",
    "Northwind",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Acme",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Cyberdyne",
    "Tyrell",
    "Wonka",
    "Gringotts",
    "Monarch",
    "Oscorp",
    "Pied",
    "Piper",
    "Dunder",
    "Mifflin",
    "Aperture",
    "Black",
    "Mesa",
    "Massive",
    "Dynamic",
    "Prestige",
    "Worldwide",
    "Sterling",
    "Cooper",
    "Bluth",
    "Gekko",
)
TITLES = (
    ("Chief Marketing Officer", "C-level"),
    ("VP of Sales", "VP"),
    ("Head of Data", "Head"),
    ("Director of Operations", "Director"),
    ("Founder", "Owner"),
    ("Marketing Manager", "Manager"),
    ("Software Engineer", "Individual"),
    ("Analyst", "Individual"),
    ("Operations Lead", "Manager"),
    ("Student", "Individual"),
    ("", ""),
)
AUTHORITY = ("decision maker", "influencer", "user", "")
BUDGET = ("under 10k", "10k-50k", "50k+", "")
FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")


@dataclass(frozen=True)
class SeedResult:
    companies: int
    contacts: int


def seed(*, contacts: int = 2000, companies: int = 40, seed: int = 7) -> SeedResult:
    """Create demo users, companies and contacts. Deterministic for a given ``seed``. Skips existing emails."""
    rng = random.Random(seed)
    with transaction.atomic():
        for email, name, role in DEMO_USERS:
            create_user(email=email, password=DEMO_PASSWORD, role=role, name=name, validate=False)
        made = []
        for i in range(companies):
            name = f"{COMPANY_WORDS[i % len(COMPANY_WORDS)]} {('Labs', 'Inc', 'GmbH', 'Group', 'Systems')[i % 5]}"
            domain = name.lower().replace(" ", "") + ".example"
            made.append(
                Company(
                    name=name,
                    domain=domain,
                    size=rng.choice((5, 12, 40, 80, 250, 1200, 5000)),
                    industry=rng.choice(INDUSTRIES),
                    country=rng.choice(COUNTRIES),
                )
            )
        Company.objects.bulk_create(made, ignore_conflicts=True)
        by_name = {c.name.lower(): c for c in Company.objects.all()}
        people = []
        for i in range(contacts):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            company = by_name[made[rng.randrange(companies)].name.lower()]
            free = rng.random() < 0.15
            domain = rng.choice(FREE_MAIL) if free else company.domain
            title, seniority = rng.choice(TITLES)
            people.append(
                Contact(
                    email=f"{first}.{last}.{i}@{domain}".lower().replace(" ", ""),
                    first_name=first,
                    last_name=last,
                    job_title=title,
                    seniority=seniority,
                    company=None if free else company,
                    country=rng.choice(COUNTRIES),
                    phone=f"+1 555 {rng.randrange(1000, 9999)}" if rng.random() < 0.6 else "",
                    authority=rng.choice(AUTHORITY),
                    budget=rng.choice(BUDGET),
                )
            )
        Contact.objects.bulk_create(people, ignore_conflicts=True, batch_size=1000)
    return SeedResult(companies=Company.objects.count(), contacts=Contact.objects.count())
