from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import set_script_prefix
from django.utils import timezone

from crm.models import Company, Contact, Stage
from front import leadlist
from front.forms import PlainSelect
from tests.scores import make_contact


@pytest.fixture
def book(db):
    acme = Company.objects.create(name="Acme Rockets")
    now = timezone.now()
    rows = [
        ("ada@example.com", "Ada", "Lovelace", Stage.MQL, 45, "A", acme, now - timedelta(days=2)),
        ("alan@example.com", "Alan", "Turing", Stage.LEAD, 80, "B", None, now - timedelta(days=40)),
        ("grace@example.com", "Grace", "Hopper", Stage.MQL, 60, "A", acme, None),
        ("linus@example.com", "Linus", "Torvalds", Stage.SQL, 90, "C", None, now - timedelta(days=1)),
    ]
    return [
        make_contact(email=e, first_name=f, last_name=last, stage=s, score=sc, grade=g, company=co, last_activity_at=a)
        for e, f, last, s, sc, g, co, a in rows
    ]


def emails(client, **params):
    """The people the table lists, in order (by the part of their email before the @)."""
    response = client.get("/leads/", params, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return re.findall(r'<div class="muted">(\w+)@example\.com</div>', response.content.decode())


def test_mqls_come_first_by_default(client, marketer_mia, book):
    client.force_login(marketer_mia)

    assert emails(client) == ["grace", "ada", "linus", "alan"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"stage": "mql"}, ["grace", "ada"]),
        ({"grade": "A", "stage": "mql"}, ["grace", "ada"]),
        ({"min_score": 60, "max_score": 85, "sort": "score"}, ["alan", "grace"]),
        ({"q": "acme"}, ["grace", "ada"]),
        ({"q": "ada lovelace"}, ["ada"]),
        ({"q": "TURING"}, ["alan"]),
        ({"active": "7", "sort": "activity"}, ["linus", "ada"]),
        ({"active": "never"}, ["grace"]),
        ({"sort": "activity"}, ["linus", "ada", "alan", "grace"]),
    ],
)
def test_filters_search_and_sorts(client, marketer_mia, book, params, expected):
    client.force_login(marketer_mia)

    assert emails(client, **params) == expected


def test_keyset_pages_walk_the_whole_list_once(client, marketer_mia, db, monkeypatch):

    monkeypatch.setattr(leadlist, "PAGE_SIZE", 3)
    for i in range(10):
        make_contact(email=f"p{i}@example.com", score=i % 4)
    client.force_login(marketer_mia)
    seen, after = [], None
    for _ in range(5):
        data = leadlist.LeadFilters({"sort": "score", **({"after": after} if after else {})})
        assert data.is_valid()
        found = leadlist.page(data.cleaned_data, user=marketer_mia)
        seen += [c.email for c in found.contacts]
        after = found.next_cursor
        if not after:
            break

    assert len(seen) == len(set(seen)) == 10
    assert [Contact.objects.scored().get(email=e).score for e in seen] == sorted(
        (i % 4 for i in range(10)), reverse=True
    )


@pytest.mark.parametrize(
    "params",
    [
        {"min_score": "x"},
        {"stage": "hot"},
        {"after": "garbage!"},
        {"min_score": 50, "max_score": 10},
        {"owner": "drop table"},
    ],
)
def test_bad_filters_say_what_is_wrong_instead_of_failing(client, marketer_mia, book, params):
    client.force_login(marketer_mia)

    response = client.get("/leads/", params)

    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


@pytest.mark.parametrize("whole", [True, False], ids=["few read whole", "many walked"])
@pytest.mark.parametrize(
    "params", [{}, {"q": "example"}, {"q": "n1 example"}, {"q": "example", "min_score": 0}, {"stage": "lead"}]
)
def test_the_list_runs_five_queries_whatever_it_shows(client, marketer_mia, book, monkeypatch, params, whole):
    """The session, the user, their roles, the planner's estimate and the page (counted beside it when few); a
    search alone is estimated by its word, and with other filters as well by the whole (a sixth); a walk of
    "MQLs first" that runs out of MQLs on the page walks the rest too (a sixth)."""

    monkeypatch.setattr(leadlist, "SMALL", 1000 if whole else -1)
    monkeypatch.setattr(leadlist, "SEARCH_IDS", 1000 if whole else -1)
    client.force_login(marketer_mia)
    client.get("/leads/", params)
    with CaptureQueriesContext(connection) as few:
        client.get("/leads/", params)
    Contact.objects.bulk_create([Contact(email=f"n{i}@example.com", company=book[0].company) for i in range(60)])

    with CaptureQueriesContext(connection) as many:
        page = client.get("/leads/", params)

    assert page.context["found"].contacts
    walked = not whole
    searched_and_filtered = walked and "q" in params and len(params) > 1
    out_of_mqls = walked and "stage" not in params  # a page of "MQLs first" that runs out of MQLs walks the rest
    allowed = 5 + searched_and_filtered + out_of_mqls
    assert len(many) == len(few) <= allowed, [q["sql"][:80] for q in many.captured_queries]


def test_a_script_in_a_name_is_shown_as_text(client, marketer_mia, db):
    Contact.objects.create(email="x@example.com", first_name="<script>alert(1)</script>")
    client.force_login(marketer_mia)

    html = client.get("/leads/").content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_list_says_how_many_exactly_or_about(client, marketer_mia, book, monkeypatch):

    client.force_login(marketer_mia)
    assert client.get("/leads/").context["found"].total == (len(book), True)
    monkeypatch.setattr(leadlist, "SMALL", -1)  # the planner's guess taken as many: walked, not counted
    assert client.get("/leads/").context["found"].total == (len(book), True)  # unless all fit on the page
    monkeypatch.setattr(leadlist, "PAGE_SIZE", len(book) - 1)
    page = client.get("/leads/")
    assert not page.context["found"].total[1] and "About" in page.content.decode()


def test_channels_are_a_select_of_known_ones_matched_case_insensitively(client, marketer_mia, book):
    from django.core.cache import cache

    cache.delete("leadlist:channels")
    Contact.objects.filter(pk=book[0].pk).update(channel="Google")
    client.force_login(marketer_mia)

    page = client.get("/leads/", {"channel": "google"})

    assert '<option value="Google" selected>' in page.content.decode()
    assert [c.pk for c in page.context["found"].contacts] == [book[0].pk]


def test_bad_filters_are_named_by_their_labels(client, marketer_mia, book):
    client.force_login(marketer_mia)

    page = client.get("/leads/", {"min_score": "9", "max_score": "1"}).content.decode()

    assert "<strong>To</strong>" in page and "max_score" not in page.split('role="alert"')[1][:200]


@pytest.mark.parametrize("whole", [True, False], ids=["few read whole", "many walked"])
@pytest.mark.parametrize("sort", ["priority", "score", "activity", "created"])
def test_every_sort_pages_through_everyone_once_in_its_order(marketer_mia, db, monkeypatch, sort, whole):
    """Pages of 3 over 14 contacts with tied keys, MQLs and others, some never active: every contact once, in
    the sort's order (ties by the newest contact first), across the "MQLs first" change of part too; whether
    the matches are few (sorted whole) or many (a walk down the sort's index)."""

    monkeypatch.setattr(leadlist, "PAGE_SIZE", 3)
    monkeypatch.setattr(leadlist, "SMALL", 1000 if whole else -1)
    now = timezone.now()
    for i in range(14):
        make_contact(
            email=f"s{i}@example.com",
            stage=Stage.MQL if i % 3 == 0 else Stage.LEAD,
            score=i % 4,
            last_activity_at=None if i % 5 == 0 else now - timedelta(days=i % 3),
        )
    Contact.objects.filter(email__in=["s1@example.com", "s2@example.com"]).update(created_at=now)  # a tie
    seen, after = [], None
    while True:
        data = leadlist.LeadFilters({"sort": sort, **({"after": after} if after else {})})
        assert data.is_valid(), data.errors
        found = leadlist.page(data.cleaned_data, user=marketer_mia)
        seen += [c.pk for c in found.contacts]
        after = found.next_cursor
        if not after:
            break

    every = list(Contact.objects.scored().filter(email__startswith="s"))
    order = {
        "priority": lambda c: (c.stage == Stage.MQL, c.score, c.pk),
        "score": lambda c: (c.score, c.pk),
        "activity": lambda c: (c.last_activity_at or leadlist.EPOCH, c.pk),
        "created": lambda c: (c.created_at, c.pk),
    }[sort]
    assert seen == [c.pk for c in sorted(every, key=order, reverse=True)]


def test_each_row_says_the_grade_and_trend_of_its_live_score(client, marketer_mia, db):
    make_contact(email="rising@example.com", score=50, grade="A", trend="rising")
    client.force_login(marketer_mia)

    html = client.get("/leads/").content.decode()

    assert '<td data-label="Trend">Rising</td>' in html


def test_each_row_names_its_contact_company_stage_and_owner_and_links_to_its_page(client, marketer_mia, rep_sam, db):
    acme = Company.objects.create(name="Acme Rockets")
    owned = make_contact(email="ada@example.com", first_name="Ada", last_name="Lovelace", company=acme, stage=Stage.MQL)
    Contact.objects.filter(pk=owned.pk).update(owner=rep_sam)
    nameless = make_contact(email="nobody@example.com", stage=Stage.SQL)
    client.force_login(marketer_mia)

    html = client.get("/leads/").content.decode()

    assert f'<a href="/leads/{owned.pk}/"><strong>Ada Lovelace</strong></a>' in html
    assert f'<a href="/leads/{nameless.pk}/"><strong>nobody@example.com</strong></a>' in html
    assert '<td data-label="Company">Acme Rockets</td>' in html
    assert '<span class="stage stage-mql">MQL</span>' in html and '<span class="stage stage-sql">SQL</span>' in html
    assert f'<td data-label="Owner">{rep_sam.get_full_name()}</td>' in html
    assert html.count('<td data-label="Owner">—</td>') == 1
    assert html.count('<td data-label="Company">—</td>') == 1


def test_the_filter_selects_keep_what_was_chosen(client, marketer_mia, book):
    client.force_login(marketer_mia)

    html = client.get("/leads/", {"stage": "mql", "sort": "score", "active": "never"}).content.decode()

    assert '<select name="stage" aria-label="Stage" id="id_stage">' in html
    for chosen in ('value="mql" selected>MQL', 'value="score" selected>Score', 'value="never" selected>Never'):
        assert f"<option {chosen}</option>" in html
    assert '<option value="lead">Lead</option>' in html and '<option value="" selected>Any grade</option>' in html


def test_a_plain_select_escapes_its_choices():
    select = PlainSelect(attrs={"aria-label": 'say "hi"'}, choices=[("<v>", "<b>bold</b>"), ("", "none")])

    assert select.render("pick", "<v>") == (
        '<select name="pick" aria-label="say &quot;hi&quot;"><option value="&lt;v&gt;" selected>&lt;b&gt;bold&lt;/b&gt;'
        '</option><option value="">none</option></select>'
    )


def test_a_plain_select_marks_one_choice_and_leaves_groups_to_django():
    twice = PlainSelect(choices=[("a", "A"), ("a", "again"), (None, "none")])
    grouped = PlainSelect(choices=[("Group", [("a", "A")])])

    assert twice.render("x", "a") == (
        '<select name="x"><option value="a" selected>A</option><option value="a">again</option>'
        '<option value="">none</option></select>'
    )
    assert '<optgroup label="Group">' in grouped.render("x", "a")


def test_the_rows_link_under_the_prefix_the_site_is_served_at():
    try:
        set_script_prefix("/baton/")
        assert leadlist.contact_url().format(7) == "/baton/leads/7/"
    finally:
        set_script_prefix("/")
    assert leadlist.contact_url().format(7) == "/leads/7/"
