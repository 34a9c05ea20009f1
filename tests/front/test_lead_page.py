from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.models import Contact, Note, Stage
from leads.models import Event, Source
from scoring.models import ScoreHistory
from tests.scores import reloaded

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ada(db):
    return Contact.objects.create(email="ada@example.com", first_name="Ada", job_title="Engineer", stage=Stage.MQL)


def add_events(contact, n, **properties):
    source = Source.objects.get_or_create(name="website")[0]
    now = timezone.now()
    Event.objects.bulk_create(
        [
            Event(
                source=source,
                client_id=f"{contact.pk}-{i}-{now.timestamp()}",
                contact=contact,
                type="page_view",
                properties=properties,
                occurred_at=now - timedelta(minutes=i),
                received_at=now,
            )
            for i in range(n)
        ]
    )


@pytest.mark.parametrize(
    ("persona", "status"), [("marketer_mia", 200), ("rep_sam", 200), ("admin_ada", 200), ("roleless_nick", 403)]
)
def test_everyone_with_a_role_reads_a_lead(client, request, ada, persona, status):
    client.force_login(request.getfixturevalue(persona))

    assert client.get(f"/leads/{ada.pk}/").status_code == status


def test_marketing_edits_the_profile_inline(client, marketer_mia, ada):
    client.force_login(marketer_mia)
    assert "<form" in client.get(f"/leads/{ada.pk}/?edit=profile", **HTMX).content.decode()

    response = client.post(f"/leads/{ada.pk}/profile", {"first_name": "Ada", "job_title": "CTO"}, **HTMX)

    assert "CTO" in response.content.decode()
    assert Contact.objects.scored().get(pk=ada.pk).job_title == "CTO"


def test_an_invalid_profile_is_refused_inline_and_nothing_is_saved(client, marketer_mia, ada):
    client.force_login(marketer_mia)

    response = client.post(f"/leads/{ada.pk}/profile", {"first_name": "x" * 200, "job_title": "CTO"}, **HTMX)

    assert 'role="alert"' in response.content.decode()
    assert Contact.objects.scored().get(pk=ada.pk).job_title == "Engineer"


def test_sales_cannot_edit_the_profile_or_see_marketing_actions(client, rep_sam, ada):
    client.force_login(rep_sam)

    page = client.get(f"/leads/{ada.pk}/").content.decode()
    assert "Send to sales" not in page
    assert "?edit=profile" not in page
    assert client.post(f"/leads/{ada.pk}/profile", {"job_title": "CEO"}).status_code == 403
    assert Contact.objects.scored().get(pk=ada.pk).job_title == "Engineer"


def test_marketing_sees_its_actions_for_an_mql(client, marketer_mia, ada):
    client.force_login(marketer_mia)

    assert "Send to sales" in client.get(f"/leads/{ada.pk}/").content.decode()


def test_notes_are_added_and_listed(client, rep_sam, ada):
    client.force_login(rep_sam)

    html = client.post(f"/leads/{ada.pk}/notes", {"body": "Called, left a voicemail"}, **HTMX).content
    assert "Called, left a voicemail" in html.decode()
    assert Note.objects.get().author == rep_sam
    assert 'role="alert"' in client.post(f"/leads/{ada.pk}/notes", {"body": ""}, **HTMX).content.decode()


def test_the_timeline_reads_like_sentences_and_escapes_what_visitors_sent(client, marketer_mia, ada):
    add_events(ada, 1, path="/pricing<script>alert(1)</script>", title="<script>alert(2)</script>")
    client.force_login(marketer_mia)

    html = client.get(f"/leads/{ada.pk}/").content.decode()

    assert "Viewed /pricing&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(" not in html


def test_the_timeline_pages_through_older_activity(client, marketer_mia, ada):
    add_events(ada, 30, path="/docs")
    client.force_login(marketer_mia)

    first = client.get(f"/leads/{ada.pk}/").content.decode()
    assert first.count("Viewed /docs") == 25
    older = re.search(r"part=timeline&(?:amp;)?before=(\d+)", first).group(1)
    rest = client.get(f"/leads/{ada.pk}/?part=timeline&before={older}", **HTMX).content.decode()
    assert rest.count("Viewed /docs") == 5
    assert "Older activity" not in rest


def test_older_activity_without_htmx_opens_the_page_at_the_older_events(client, marketer_mia, ada):
    add_events(ada, 30, path="/docs")
    client.force_login(marketer_mia)
    first = client.get(f"/leads/{ada.pk}/").content.decode()
    older = re.search(r'href="\?before=(\d+)"', first).group(1)

    page = client.get(f"/leads/{ada.pk}/?before={older}").content.decode()

    assert page.count("Viewed /docs") == 5
    assert "Older activity" not in page and "<h1" in page


def test_the_score_chart_draws_the_history(client, marketer_mia, ada):
    now = timezone.now()
    for days, score in ((3, 10), (2, 35), (1, 48)):
        ScoreHistory.objects.create(
            contact=ada, at=now - timedelta(days=days), score=score, fit_score=0, engagement_score=score, stage="lead"
        )
    client.force_login(marketer_mia)

    page = client.get(f"/leads/{ada.pk}/").content.decode()
    assert "<polyline" in page and page.count('class="dot s1"') == 4  # three changes and today
    assert "MQL 40" in page and "SQL 70" in page  # the thresholds, drawn


def test_a_score_with_one_point_is_a_line_to_today_with_its_stage_change_marked(client, marketer_mia, ada):
    from crm.models import StageChange

    StageChange.objects.create(
        contact=ada, from_stage="lead", to_stage="mql", at=timezone.now(), by_label="t", score=45
    )
    client.force_login(marketer_mia)

    page = client.get(f"/leads/{ada.pk}/").content.decode()

    assert page.count('class="dot s1"') == 1 and "→ MQL on" in page and 'class="stage-marker"' in page


def test_the_lead_page_runs_a_fixed_number_of_queries(client, marketer_mia, ada):
    client.force_login(marketer_mia)
    add_events(ada, 2, path="/")
    client.get(f"/leads/{ada.pk}/")
    with CaptureQueriesContext(connection) as few:
        client.get(f"/leads/{ada.pk}/")
    add_events(ada, 40, path="/")
    for i in range(10):
        Note.objects.create(contact=ada, author=marketer_mia, body=f"n{i}")

    with CaptureQueriesContext(connection) as many:
        client.get(f"/leads/{ada.pk}/")

    assert len(many) == len(few) <= 10, [q["sql"][:80] for q in many.captured_queries]


def test_a_profile_edit_rescores_the_lead_before_the_page_answers(client, marketer_mia, ada):
    client.force_login(marketer_mia)

    html = client.post(f"/leads/{ada.pk}/profile", {"first_name": "Ada", "job_title": "VP of Growth"}, **HTMX)

    ada = reloaded(ada)
    assert (ada.fit_score, ada.grade) == (15, "B")  # "Senior job title"
    assert ada.activity.stale_since is None
    score_panel = re.search(
        r'<section class="panel" id="score" hx-swap-oob="true">(.*?)</section>', html.content.decode(), re.S
    )
    assert "Senior job title" in score_panel.group(1)


def test_a_profile_edit_without_htmx_saves_and_shows_the_page_again(client, marketer_mia, ada):
    client.force_login(marketer_mia)

    response = client.post(f"/leads/{ada.pk}/profile", {"first_name": "Ada", "job_title": "Head of Data"})

    assert response["Location"] == f"/leads/{ada.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "Profile saved." in page and "Senior job title" in page


def test_the_edit_link_opens_the_form_without_htmx_too(client, marketer_mia, ada):
    client.force_login(marketer_mia)

    page = client.get(f"/leads/{ada.pk}/?edit=profile").content.decode()

    assert '<html lang="en">' in page and f'action="/leads/{ada.pk}/profile"' in page


@pytest.mark.parametrize("before", ["²", "9" * 40, "-5", "\x00", "abc"])
def test_an_odd_timeline_position_shows_the_first_page(client, marketer_mia, ada, before):
    add_events(ada, 3, path="/pricing")
    client.force_login(marketer_mia)

    response = client.get(f"/leads/{ada.pk}/", {"before": before})

    assert response.status_code == 200
    assert response.content.decode().count("Viewed /pricing") == 3


def test_the_lead_page_shows_the_company_and_an_unsubscribed_badge(client, marketer_mia, ada):
    from crm.models import Company

    ada.company = Company.objects.create(
        name="Analytical Engines", domain="engines.example", size=250, industry="Maths"
    )
    ada.email_opt_out = True
    ada.save()
    client.force_login(marketer_mia)

    page = client.get(f"/leads/{ada.pk}/").content.decode()

    assert "250 employees" in page and "Maths" in page and "engines.example" in page
    assert ">unsubscribed</span>" in page
