"""Managers' metrics: overview, calibration, threshold advice, patterns, reviewers,
autonomy, and the decisions export. Every page reads rollups (reviews.insights), not decisions.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from .. import charts, exports, figures, monitoring, validation
from ..access import ADMINS, MANAGERS, REVIEWERS, has_role, role_required
from ..advice import threshold_advice
from ..insights.agreement import agreement_report, four_eyes_report
from ..insights.calibration import calibration_bins, calibration_reading
from ..insights.flagged import FLAGGED_DAYS, MIN_INCORRECT, by_category, flagged_patterns
from ..insights.patterns import change_patterns
from ..insights.periods import PERIODS, Period, period_from
from ..insights.questions import top_questions
from ..insights.readiness import readiness_of
from ..insights.reversals import reversals_in
from ..insights.reviewers import RUBBER_STAMP_SECONDS, reviewer_stats
from ..insights.stats import add_lists, zero_error_sample
from ..insights.summaries import (
    Submissions,
    Summary,
    group_by,
    rollup_rows,
    submission_rows,
    submissions_by,
    summarize,
    timed_out,
)
from ..models import Agent, Category
from ..rollups import TIME_EDGES
from ..services.autonomy import switch_to_autonomous
from ..services.errors import TransitionError
from ..templatetags.metrics_format import duration

TABS = [
    ("metrics", "Overview"),
    ("metrics_calibration", "Calibration"),
    ("metrics_advice", "Threshold advice"),
    ("metrics_patterns", "Patterns"),
    ("metrics_reviewers", "Reviewers"),
    ("metrics_autonomy", "Autonomy"),
    ("metrics_agreement", "Agreement"),
    ("audit", "Audit trail"),
    ("oversight_report", "Oversight report"),
]


def _int(value: str | None) -> int | None:
    return validation.parse_id(value or "")


def _context(request: HttpRequest, tab: str, **extra: Any) -> dict[str, Any]:
    """Period and filters shared by every metrics page."""
    period = period_from(request.GET)
    categories = list(Category.objects.order_by("name"))
    agents = list(Agent.objects.order_by("name"))
    category_id = _int(request.GET.get("category"))
    agent_id = _int(request.GET.get("agent"))
    query = request.GET.copy()
    query.pop("days", None)
    return {
        "nav_active": "metrics",
        "tabs": TABS,
        "tab": tab,
        "period": period,
        "periods": PERIODS,
        "days": request.GET.get("days", "" if request.GET.get("from") else "30"),
        "categories": categories,
        "category_names": {c.pk: c.name for c in categories},
        "agents": agents,
        "agent_names": {a.pk: a.name for a in agents},
        "category_id": category_id,
        "agent_id": agent_id,
        "filter_query": query.urlencode(),
        "full_query": request.GET.urlencode(),
        **extra,
    }


def _buckets(period: Period) -> tuple[int, list[date]]:
    """Days per chart bar: one for up to three months, a week beyond."""
    size = 1 if period.days <= 92 else 7
    return size, period.dates()[::size]


@require_GET
@role_required(MANAGERS, ADMINS)
def overview(request: HttpRequest) -> HttpResponse:
    ctx = _context(request, "metrics")
    period = ctx["period"]
    rows = rollup_rows(period, ctx["category_id"], ctx["agent_id"])
    submitted = submission_rows(period, ctx["category_id"], ctx["agent_id"])
    summary = summarize(rows)
    size, starts = _buckets(period)

    def bucket(day: date) -> date:
        return starts[(day - period.start).days // size]

    grouped: dict[date, Summary] = {}
    for row in rows:
        grouped.setdefault(bucket(row["day"]), Summary()).add(row)
    buckets = [grouped.get(start, Summary()) for start in starts]
    by_submission_day: dict[date, Submissions] = {}
    for row in submitted:
        by_submission_day.setdefault(bucket(row["day"]), Submissions()).add(row)
    labels = [d.strftime("%b %d") for d in starts]
    volume = charts.stacked_bars(
        "Decisions per " + ("day" if size == 1 else "week"),
        labels,
        [
            ("approved", charts.COLORS["approved"], [b.approved for b in buckets]),
            ("modified", charts.COLORS["modified"], [b.modified for b in buckets]),
            ("rejected", charts.COLORS["rejected"], [b.rejected for b in buckets]),
            ("timed out", charts.COLORS["timed_out"], [b.timed_out for b in buckets]),
            ("auto-approved", charts.COLORS["auto_approved"], [b.auto_approved for b in buckets]),
        ]
        # Only a period with a stop's rejections has the series: most never do.
        + (
            [("stopped", charts.COLORS["stopped"], [b.stopped for b in buckets])]
            if summary.stopped
            else []
        ),
    )
    times = charts.lines(
        "Review time (first view to decision)",
        labels,
        [
            ("median", charts.COLORS["p50"], [b.review_p50 for b in buckets]),
            ("90th percentile", charts.COLORS["p90"], [b.review_p90 for b in buckets]),
        ],
        fmt=duration,
    )
    escalation = charts.lines(
        "Escalation rate (escalated / submitted, by day of submission)",
        labels,
        [
            (
                "escalated",
                charts.COLORS["modified"],
                [by_submission_day.get(start, Submissions()).rate for start in starts],
            )
        ],
        fmt=lambda v: f"{v:.0%}",
        max_value=1.0,
    )
    by_category = _breakdown(rows, submitted, "category_id", ctx["category_names"])
    asked = top_questions(period, ctx["category_id"], ctx["agent_id"])
    ctx.update(
        summary=summary,
        submissions=submissions_by(submitted),
        volume_chart=volume,
        time_chart=times,
        escalation_chart=escalation,
        by_category=by_category,
        by_agent=_breakdown(rows, submitted, "agent_id", ctx["agent_names"]),
        questions=[
            (name, asked[pk])
            for pk, name in sorted(ctx["category_names"].items(), key=lambda item: item[1])
            if pk in asked
        ],
        # The guideline form is a reviewer's or an admin's; a manager only sees the questions.
        writes_guidelines=has_role(request.user, REVIEWERS, ADMINS),
        counts_note=figures.counts_note("overview", summary.timed_out),
        reversals=reversals_in(period, summary.total, ctx["category_id"], ctx["agent_id"]),
    )
    return render(request, "metrics/overview.html", ctx)


def _breakdown(
    rows: list[dict[str, Any]], submitted: list[dict[str, Any]], key: str, names: dict
) -> list[tuple[Any, Summary, Submissions]]:
    """Per category or agent: its decisions and its submissions, busiest first."""
    decisions = group_by(rows, key)
    submissions = submissions_by(submitted, key)
    keys = sorted(
        set(decisions) | set(submissions),
        key=lambda k: (
            -submissions.get(k, Submissions()).submitted,
            -decisions.get(k, Summary()).total,
        ),
    )
    return [
        (
            names.get(k, k),
            decisions.get(k, Summary()),
            submissions.get(k, Submissions()),
        )
        for k in keys
    ]


@require_GET
@role_required(MANAGERS, ADMINS)
def calibration(request: HttpRequest) -> HttpResponse:
    ctx = _context(request, "metrics_calibration")
    rows = rollup_rows(ctx["period"], ctx["category_id"], ctx["agent_id"])
    panels = []
    for (agent_id, category_id), summary in sorted(
        group_by(rows, "agent_id", "category_id").items(),
        key=lambda item: -item[1].human,
    ):
        if not summary.human:
            continue
        bins = calibration_bins(summary)
        name = f"{ctx['agent_names'].get(agent_id)} · {ctx['category_names'].get(category_id)}"
        panels.append(
            {
                "title": name,
                "reading": calibration_reading(bins),
                "chart": charts.reliability(f"Calibration of {name}", bins),
                "bins": [b for b in bins if b.n],
                "n": summary.human,
            }
        )
    ctx.update(
        panels=panels,
        counts_note=figures.counts_note("calibration", summarize(rows).timed_out),
    )
    return render(request, "metrics/calibration.html", ctx)


@require_GET
@role_required(MANAGERS, ADMINS)
def advice(request: HttpRequest) -> HttpResponse:
    ctx = _context(request, "metrics_advice")
    ctx["advice"] = threshold_advice(ctx["period"], ctx["category_id"])
    ctx["bar_label"] = figures.pct_bar(settings.HITL_AUTONOMY_BAR)
    ctx["needed"] = zero_error_sample(settings.HITL_AUTONOMY_BAR)
    ctx["min_n"] = settings.HITL_ADVICE_MIN_SAMPLE
    ctx["counts_note"] = figures.counts_note("advice", timed_out(ctx["period"], ctx["category_id"]))
    return render(request, "metrics/advice.html", ctx)


@require_GET
@role_required(MANAGERS, ADMINS)
def patterns(request: HttpRequest) -> HttpResponse:
    ctx = _context(request, "metrics_patterns")
    ctx["patterns"] = change_patterns(ctx["period"], ctx["category_id"])
    ctx.update(
        flagged=flagged_patterns(ctx["category_id"]),
        flagged_days=FLAGGED_DAYS,
        flagged_min=MIN_INCORRECT,
        **_adopters(request),
    )
    ctx["counts_note"] = figures.counts_note(
        "patterns", timed_out(ctx["period"], ctx["category_id"])
    )
    return render(request, "metrics/patterns.html", ctx)


def _adopters(request: HttpRequest) -> dict[str, Any]:
    """Who may adopt a flagged pattern: the rule editor is an admin's, the guideline form a
    reviewer's or an admin's; a manager sees the pattern and who may. The guideline form's
    cancel link leads back to this page."""
    return {
        "edits_rules": has_role(request.user, ADMINS),
        "writes_guidelines": has_role(request.user, REVIEWERS, ADMINS),
        "flagged_back": request.resolver_match.url_name,
    }


@require_GET
@role_required(MANAGERS, ADMINS)
def reviewers(request: HttpRequest) -> HttpResponse:
    ctx = _context(request, "metrics_reviewers")
    stats = reviewer_stats(ctx["period"], ctx["category_id"])
    labels = [f"<{duration(e)}" for e in TIME_EDGES] + ["longer"]  # one spacing: "<1 s"
    combined: list[int] = []
    for s in stats:
        add_lists(combined, s.review_hist)
    cut = max((i for i, c in enumerate(combined) if c), default=0) + 2
    ctx.update(
        stats=stats,
        checked=[s for s in stats if s.checks],
        chart=charts.histogram("Review time of all reviewers", labels[:cut], combined[:cut])
        if combined
        else None,
        rubber_stamp_seconds=RUBBER_STAMP_SECONDS,
        catch_bar=settings.HITL_KNOWN_ANSWER_CATCH_BAR,
        counts_note=figures.counts_note("reviewers", timed_out(ctx["period"], ctx["category_id"])),
    )
    return render(request, "metrics/reviewers.html", ctx)


@require_GET
@role_required(MANAGERS, ADMINS)
def autonomy(request: HttpRequest) -> HttpResponse:
    """Readiness per category over its own window (since its last switch or reinstatement),
    not the period picker's: the picker cannot make a category look ready."""
    ctx = _context(request, "metrics_autonomy")
    states = readiness_of()
    ctx.update(
        readiness=states,
        counts_note=figures.counts_note("autonomy", sum(r.timed_out for r in states)),
    )
    flagged = by_category(flagged_patterns())
    ctx.update(_adopters(request))
    for row in states:  # how the way back to a human is doing, where it is open
        row.health = monitoring.health(row.autonomy) if row.is_autonomous else None
        row.flagged = flagged.get(row.category.pk, [])
    return render(request, "metrics/autonomy.html", ctx)


@require_GET
@role_required(MANAGERS, ADMINS)
def agreement(request: HttpRequest) -> HttpResponse:
    """How often a blind second reviewer agrees with the first decision, per category and
    reviewer, with a 95% lower bound; the first decision always stood."""
    ctx = _context(request, "metrics_agreement")
    report = agreement_report(ctx["period"], ctx["category_id"])
    ctx.update(
        report=report,
        four_eyes=four_eyes_report(ctx["period"], ctx["category_id"]),
        counts_note=figures.counts_note("agreement", timed_out(ctx["period"], ctx["category_id"])),
        chart=charts.rate_bars(
            "Agreement per category, with 95% intervals",
            [(a.label, a.rate, a.lower, a.upper, a.n) for a in report.by_category],
        )
        if report.by_category
        else None,
    )
    return render(request, "metrics/agreement.html", ctx)


@require_POST
@role_required(MANAGERS, ADMINS)
def autonomy_switch(request: HttpRequest, category_id: int) -> HttpResponse:
    category = get_object_or_404(Category, pk=category_id)
    (state,) = readiness_of(category_id=category.pk)
    if not state.ready:
        messages.error(request, f"{category.name} is not ready: {'; '.join(state.blockers)}.")
        return redirect("metrics_autonomy")
    try:
        switch_to_autonomous(category.pk, by=request.user, reason=request.POST.get("reason", ""))
    except (ValidationError, TransitionError) as exc:
        text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        messages.error(request, text)
        return redirect("metrics_autonomy")
    messages.success(
        request, f"{category.name} now runs without a human; a sample goes to periodic review."
    )
    return redirect("metrics_autonomy")


@require_GET
@role_required(MANAGERS, ADMINS)
def export_decisions(request: HttpRequest) -> HttpResponse:
    period = period_from(request.GET)
    fmt = "csv" if request.GET.get("format") == "csv" else "jsonl"
    rows = exports.decision_rows(
        period, _int(request.GET.get("category")), _int(request.GET.get("agent"))
    )
    body = (
        exports.as_csv(rows, exports.DECISION_COLUMNS) if fmt == "csv" else exports.as_jsonl(rows)
    )
    response = StreamingHttpResponse(
        body, content_type="text/csv" if fmt == "csv" else "application/x-ndjson"
    )
    name = f"decisions-{period.start}-{period.end}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
