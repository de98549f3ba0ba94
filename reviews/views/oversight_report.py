"""The oversight report for managers and admins: a page, a printable page, CSV and JSON, each
audited with the report's content hash (reviews.services.reports)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..access import ADMINS, MANAGERS, role_required
from ..insights.oversight_report import (
    MAX_DAYS,
    ReportFilterError,
    as_csv,
    as_json,
    oversight_report,
    report_filters,
)
from ..insights.periods import PERIODS
from ..models import Agent, Category
from ..services.reports import record_report_read
from .metrics import TABS

READERS = (MANAGERS, ADMINS)


def _render(request: HttpRequest, output: str) -> HttpResponse:
    template = "oversight/report_print.html" if output == "print" else "oversight/report.html"
    ctx = {
        "nav_active": "metrics",
        "tabs": TABS,
        "tab": "oversight_report",
        "periods": PERIODS,
        "max_days": MAX_DAYS,
        "categories": Category.objects.order_by("name"),
        "agents": Agent.objects.order_by("name"),
        "query": request.GET.urlencode(),
    }
    try:
        period, scope = report_filters(request.GET)
    except ReportFilterError as error:
        # Nothing is made or audited; the form comes back with the message.
        ctx["error"] = str(error)
        return render(request, "oversight/report.html", ctx, status=400)
    report = oversight_report(period, scope)
    record_report_read(report, by=request.user, output=output)
    picked_dates = request.GET.get("from", "").strip() or request.GET.get("to", "").strip()
    # The period button shown as selected: the last-N-days one, unless dates were picked.
    days = None if picked_dates else period.days
    ctx.update(report=report, period=period, scope=scope, days=days)
    return render(request, template, ctx)


@require_GET
@role_required(*READERS)
def report_page(request: HttpRequest) -> HttpResponse:
    return _render(request, "page")


@require_GET
@role_required(*READERS)
def report_print(request: HttpRequest) -> HttpResponse:
    return _render(request, "print")


def _download(request: HttpRequest, output: str) -> HttpResponse:
    try:
        period, scope = report_filters(request.GET)
    except ReportFilterError as error:
        return HttpResponse(str(error), status=400, content_type="text/plain; charset=utf-8")
    report = oversight_report(period, scope)
    record_report_read(report, by=request.user, output=output)
    body, content_type = (
        (as_csv(report), "text/csv; charset=utf-8")
        if output == "csv"
        else (as_json(report), "application/json")
    )
    response = HttpResponse(body, content_type=content_type)
    name = f"oversight-report-{period.start}-{period.end}-{report.sha256[:12]}.{output}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-SHA256"] = report.sha256
    return response


@require_GET
@role_required(*READERS)
def report_csv(request: HttpRequest) -> HttpResponse:
    return _download(request, "csv")


@require_GET
@role_required(*READERS)
def report_json(request: HttpRequest) -> HttpResponse:
    return _download(request, "json")
