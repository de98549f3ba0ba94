"""The oversight report in the browser: printed (print media emulated, and to PDF) it is the
report alone, its hash included; the CSV button downloads the file the hash names."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from reviews.models import AuditEvent

from .conftest import log_in
from .test_oversight_report import decide

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_printable_page_prints_the_report_alone(page, manager, agent, refunds, alice):
    decide(agent, refunds, alice, "approved", 12.0)
    log_in(page, "max")
    page.goto(page.base + "/oversight/report/")
    digest = page.locator(".report-hash").inner_text()
    assert len(digest) == 64
    page.get_by_role("link", name="Printable page").click()
    page.emulate_media(media="print")
    expect(page.locator(".topbar")).to_be_hidden()
    expect(page.locator(".screen-only")).to_be_hidden()
    expect(page.locator(".report-hash")).to_have_text(digest)
    expect(page.get_by_role("heading", name="Volumes and outcomes")).to_be_visible()
    times = page.get_by_role("region", name="Review times and rubber-stamp signals")
    expect(times.get_by_role("row", name="alice")).to_contain_text("12.0 s")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    page.emulate_media(media="screen")
    expect(page.locator(".topbar")).to_be_visible()
    outputs = list(
        AuditEvent.objects.filter(verb="oversight_report.viewed").values_list(
            "after__output", "after__sha256"
        )
    )
    assert outputs == [("page", digest), ("print", digest)]


def test_the_csv_button_downloads_the_file_the_hash_names(page, manager, agent, refunds, alice):
    log_in(page, "max")
    page.goto(page.base + "/oversight/report/")
    digest = page.locator(".report-hash").inner_text()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    path = download.value.path()
    with open(path, encoding="utf-8") as file:
        assert file.readline().strip() == f"Oversight report,sha256,{digest}"
    day = timezone.localdate()
    assert download.value.suggested_filename.startswith("oversight-report-")
    assert str(day) in download.value.suggested_filename


def test_a_bad_period_is_told_on_the_page(phone_page, manager):
    log_in(phone_page, "max")
    phone_page.goto(phone_page.base + "/oversight/report/?from=2026-06-10&to=2026-06-01")
    expect(
        phone_page.get_by_role("alert").filter(has_text="From must be on or before To")
    ).to_be_visible()
    assert not AuditEvent.objects.filter(verb__startswith="oversight_report.").exists()
