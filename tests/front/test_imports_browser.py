"""A marketer imports a CSV file in Chromium: upload → map → dry run → import → history, at 1440 and 390 px."""

from __future__ import annotations

import pytest

from crm.models import Contact

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CSV = b"Email,Given name,Company,Employees,Colour\nada@example.com,Ada,Acme,120,green\nnot-an-email,Bob,,,\n"


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width", [1440, 390])
def test_a_marketer_dry_runs_then_imports_a_file(signed_in, live_server, marketer_mia, celery_worker, width, tmp_path):
    page = signed_in(marketer_mia)
    page.set_viewport_size({"width": width, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())
    file = tmp_path / "people.csv"
    file.write_bytes(CSV)
    page.goto(f"{live_server.url}/leads/")
    page.get_by_role("link", name="Imports").click()
    assert "No imports yet" in page.content()

    page.get_by_label("CSV file").set_input_files(str(file))
    page.get_by_role("button", name="Upload and map columns").click()
    page.get_by_role("heading", name="Map the columns").wait_for()
    assert page.get_by_label("Given name").input_value() == "first_name"  # auto-matched by its header
    page.get_by_label("Employees").select_option("company_size")
    assert no_sideways_scroll(page)
    page.get_by_role("button", name="Dry run: check every row, write nothing").click()

    page.get_by_role("button", name="Import these rows").wait_for(timeout=30_000)
    assert Contact.objects.count() == 0
    assert "is not an email address" in page.locator("main, body").first.inner_text()
    assert no_sideways_scroll(page)
    page.get_by_role("button", name="Import these rows").click()

    page.get_by_text("Download the skipped rows").wait_for(timeout=30_000)
    ada = Contact.objects.select_related("company").get()
    assert (ada.email, ada.first_name, ada.company.size, ada.profile) == (
        "ada@example.com",
        "Ada",
        120,
        {"colour": "green"},
    )
    page.get_by_role("link", name="← Imports").click()
    rows = page.locator("table tbody tr")
    assert rows.count() == 2 and "Dry run" in rows.nth(1).inner_text()
    assert no_sideways_scroll(page)
