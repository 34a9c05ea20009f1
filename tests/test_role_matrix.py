"""Every page and action against every role: the server decides, whatever the page shows."""

from __future__ import annotations

import io

import pytest

from crm.models import Contact, Stage
from handoff import services
from handoff.models import QueueEntry
from leads import import_rows, imports

# (method, url, data, {role: expected status}); "anonymous" is redirected to log in (302).
MATRIX = [
    ("get", "/", None, {"marketer_mia": 302, "rep_sam": 302, "admin_ada": 302, "roleless_nick": 403}),
    ("get", "/leads/", None, {"marketer_mia": 200, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403}),
    ("get", "/leads/{contact}/", None, {"marketer_mia": 200, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403}),
    (
        "post",
        "/leads/{contact}/profile",
        {"job_title": "CTO"},
        {"marketer_mia": 200, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403},
    ),
    (
        "post",
        "/leads/{contact}/notes",
        {"body": "hi"},
        {"marketer_mia": 200, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403},
    ),
    (
        "post",
        "/leads/{contact}/hand-over",
        {"action": "disqualify", "note": "x"},
        {"marketer_mia": 200, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403},
    ),
    (
        "post",
        "/leads/{contact}/reopen",
        {"reason": "x"},
        {"marketer_mia": 403, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403},
    ),
    (
        "post",
        "/leads/hand-over",
        {"ids": "{contact}", "action": "disqualify", "note": "x"},
        {"marketer_mia": 200, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403},
    ),
    ("get", "/queue/", None, {"marketer_mia": 200, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403}),
    ("post", "/queue/{entry}/claim", {}, {"marketer_mia": 403, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403}),
    ("post", "/queue/next", {}, {"marketer_mia": 403, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403}),
    (
        "post",
        "/queue/available",
        {"available": "on"},
        {"marketer_mia": 403, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403},
    ),
    (
        "post",
        "/queue/{entry}/decline",
        {},
        {"marketer_mia": 403, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403},
    ),
    ("get", "/queue/?tab=closed", None, {"marketer_mia": 200, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403}),
    ("get", "/settings/desk/", None, {"marketer_mia": 403, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403}),
    (
        "post",
        "/settings/desk/",
        {"action": "settings", "mode": "sideways"},
        {"marketer_mia": 403, "rep_sam": 403, "admin_ada": 400, "roleless_nick": 403},
    ),
    (
        "post",
        "/leads/{contact}/adjust",
        {"points": "5", "reason": "x"},
        {"marketer_mia": 200, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403},
    ),
    (
        "post",
        "/leads/{contact}/stage",
        {"to": "lead", "reason": "x"},
        {"marketer_mia": 200, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403},
    ),
    ("get", "/settings/webhooks/", None, {"marketer_mia": 403, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403}),
    (
        "post",
        "/settings/webhooks/",
        {"name": "x", "kind": "webhook", "url": "not an address", "events": ["handoff.created"]},
        {"marketer_mia": 403, "rep_sam": 403, "admin_ada": 400, "roleless_nick": 403},
    ),
    ("get", "/criteria/v1.json", None, {"marketer_mia": 403, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403}),
    (
        "post",
        "/criteria/",
        {"action": "backtest", "days": "4000"},
        {"marketer_mia": 403, "rep_sam": 403, "admin_ada": 400, "roleless_nick": 403},
    ),
    (
        "post",
        "/criteria/",
        {"action": "suggest"},
        {"marketer_mia": 403, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403},
    ),
    ("get", "/settings/users/", None, {"marketer_mia": 403, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403}),
    (
        "post",
        "/settings/users/",
        {"email": "not an email", "role": "sales"},
        {"marketer_mia": 403, "rep_sam": 403, "admin_ada": 400, "roleless_nick": 403},
    ),
    ("get", "/reports/", None, {"marketer_mia": 200, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403}),
    ("get", "/reports/funnel.csv", None, {"marketer_mia": 200, "rep_sam": 404, "admin_ada": 200, "roleless_nick": 403}),
    ("get", "/reports/speed.csv", None, {"marketer_mia": 200, "rep_sam": 200, "admin_ada": 200, "roleless_nick": 403}),
    ("get", "/imports/", None, {"marketer_mia": 200, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403}),
    ("post", "/imports/", {}, {"marketer_mia": 400, "rep_sam": 403, "admin_ada": 400, "roleless_nick": 403}),
    ("get", "/imports/{run}/", None, {"marketer_mia": 200, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403}),
    (
        "post",
        "/imports/{run}/start",
        {"mode": "upsert", "column_0": "email", "action": "dry_run"},
        {"marketer_mia": 302, "rep_sam": 403, "admin_ada": 302, "roleless_nick": 403},
    ),
    ("post", "/imports/{run}/again", {}, {"marketer_mia": 302, "rep_sam": 403, "admin_ada": 302, "roleless_nick": 403}),
    (
        "get",
        "/imports/{run}/errors.csv",
        None,
        {"marketer_mia": 200, "rep_sam": 403, "admin_ada": 200, "roleless_nick": 403},
    ),
    ("get", "/admin/", None, {"marketer_mia": 302, "rep_sam": 302, "admin_ada": 200, "roleless_nick": 302}),
]
PERSONAS = ["marketer_mia", "rep_sam", "admin_ada", "roleless_nick", "anonymous"]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("method", "url", "data", "expected"), MATRIX, ids=[f"{m} {u}" for m, u, _, _ in MATRIX])
def test_role_matrix(client, request, db, persona, method, url, data, expected):
    contact = Contact.objects.create(email="lead@example.com", stage=Stage.MQL)
    entry_contact = Contact.objects.create(email="sql@example.com", stage=Stage.SQL)
    services.enqueue(contact_ids=[entry_contact.pk], sent_by="scoring v1", sla=services.Sla(60, 120), requested={})
    entry = QueueEntry.objects.get(contact=entry_contact)
    upload = io.BytesIO(b"email\na@example.com\n")
    stored = imports.store_file(upload=upload, name="a.csv", checked=import_rows.scan(upload))
    run = imports.create(file=stored, mapping={}, mode="upsert", overwrite=False, dry_run=True, start=False)
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    path = url.format(contact=contact.pk, entry=entry.pk, run=run.pk)
    payload = {k: (v.format(contact=contact.pk) if isinstance(v, str) else v) for k, v in (data or {}).items()}

    response = client.get(path) if method == "get" else client.post(path, payload, HTTP_HX_REQUEST="true")

    assert response.status_code == (302 if persona == "anonymous" else expected[persona])
