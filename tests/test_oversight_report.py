"""The oversight report: its figures agree with the records, its hash is stable for the same
records and changes with them, every view and download is audited with the hash, and bad
filters or the wrong role get a message and write nothing."""

import csv
import hashlib
import html
import io
import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from reviews.insights.oversight_report import (
    ReportFilterError,
    Scope,
    canonical,
    oversight_report,
    report_filters,
)
from reviews.insights.periods import Period
from reviews.models import AuditEvent, Category, Decision
from reviews.services.autonomy import switch_to_autonomous
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request

from .conftest import ROUTINE

URLS = [
    "oversight_report",
    "oversight_report_print",
    "oversight_report_csv",
    "oversight_report_json",
]


def escalated(agent, category, title="Refund 900 EUR"):
    return submit_request(
        agent, category=category, title=title, confidence=0.1, attributes=dict(ROUTINE)
    ).request


def decide(agent, category, reviewer, outcome, review_seconds):
    """A final decision (its undo window over) with a known review time."""
    request = escalated(agent, category)
    extra = {"final_action": {"action": "refund", "amount": 50}} if outcome == "modified" else {}
    decide_request(
        request.pk, by=reviewer, outcome=outcome, reason="checked",
        now=timezone.now() - timedelta(minutes=1), **extra,
    )  # fmt: skip
    Decision.objects.filter(request=request).update(review_seconds=review_seconds)
    return request


@pytest.fixture
def seeded(agent, refunds, alice, carol):
    """Three decisions by people, one by the rules."""
    decide(agent, refunds, alice, "approved", 10.0)
    decide(agent, refunds, alice, "rejected", 30.0)
    decide(agent, refunds, carol, "modified", 40.0)
    routine = submit_request(
        agent, category=refunds, title="Refund 20 EUR", confidence=0.95, attributes=dict(ROUTINE)
    ).request
    assert routine.status == "auto_approved"
    return refunds


def today() -> Period:
    day = timezone.localdate()
    return Period(day, day)


def section(report, key):
    return next(s for s in report.sections if s.key == key)


def rows_by_first(report, key):
    return {row[0]: row for row in section(report, key).rows}


def test_the_figures_agree_with_the_decisions(seeded, manager):
    report = oversight_report(today(), Scope("all"))
    volumes = rows_by_first(report, "volumes")
    assert volumes["People"][1:5] == [3, 1, 1, 1]
    assert volumes["People"][5:] == [0, 0.3333, 0.3333, 0.3333, 0.0]  # none reversed
    assert volumes["Rules and autonomy (no person)"][1:5] == [1, 1, 0, 0]
    assert volumes["All decisions"][1:5] == [Decision.objects.count(), 2, 1, 1]
    assert "4 requests submitted in the period, 3 of them sent to a person" in (
        section(report, "volumes").note
    )
    reviewers = rows_by_first(report, "reviewers")
    assert reviewers["alice"][1:5] == [2, 0.5, 20.0, 28.0]  # median and p90 of 10 s and 30 s
    assert reviewers["carol"][1:4] == [1, 0.0, 40.0]
    assert reviewers["All people"][1] == 3
    people = rows_by_first(report, "people")
    assert set(people) == {"alice", "carol"}  # the agent is no person; max did nothing
    assert people["alice"][2] == "reviewer"
    assert people["alice"][3] == AuditEvent.objects.filter(actor_user__username="alice").count()


def test_the_scope_narrows_every_figure(seeded, agent, finance_queue, bob):
    other = Category.objects.create(
        slug="invoices", name="Invoices", queue=finance_queue, mode="gate",
        reversibility="reversible", blast_radius="low",
    )  # fmt: skip
    decide(agent, other, bob, "approved", 5.0)
    report = oversight_report(today(), Scope("category", other.pk, other.name))
    assert rows_by_first(report, "volumes")["All decisions"][1] == 1
    assert set(rows_by_first(report, "people")) == {"bob"}
    assert set(rows_by_first(report, "policies")) <= {"Invoices"}
    everything = oversight_report(today(), Scope("all"))
    assert rows_by_first(everything, "volumes")["All decisions"][1] == 5


def test_autonomy_switches_and_policy_versions_carry_their_evidence(seeded, manager):
    switch_to_autonomous(seeded.pk, by=manager, reason="99.4% over 600 judged decisions")
    report = oversight_report(today(), Scope("all"))
    (switch,) = [r for r in section(report, "autonomy").rows if r[2] == "switched to autonomous"]
    assert switch[1:] == [
        "Refunds",
        "switched to autonomous",
        "max",
        "99.4% over 600 judged decisions",
    ]
    policies = section(report, "policies").rows
    assert [row[2] for row in policies][-1] == "autonomous"
    assert any(row[6] == "max" for row in policies)
    assert rows_by_first(report, "people")["max"][2] == "manager"


def test_the_retention_setting_and_its_effect_are_in_the_report(db, settings):
    report = oversight_report(today(), Scope("all"))
    facts = dict(section(report, "retention").rows)
    assert facts["Retention period (HITL_RETENTION_DAYS)"] == f"{settings.HITL_RETENTION_DAYS} days"
    assert facts["Enforced by the database"] == f"{settings.HITL_RETENTION_DAYS} days"
    until = timezone.localdate() + timedelta(days=settings.HITL_RETENTION_DAYS)
    assert facts["Records of this period kept at least until"] == until.isoformat()


def test_the_hash_is_stable_for_the_same_records_and_changes_with_them(seeded, agent, alice):
    first = oversight_report(today(), Scope("all"))
    again = oversight_report(today(), Scope("all"))
    assert first.sha256 == again.sha256
    assert first.sha256 == hashlib.sha256(canonical(first.data()).encode()).hexdigest()
    decide(agent, seeded, alice, "approved", 12.0)
    assert oversight_report(today(), Scope("all")).sha256 != first.sha256


def test_reading_the_report_is_audited_with_its_hash_and_does_not_change_it(
    client, seeded, manager
):
    client.force_login(manager)
    expected = oversight_report(*report_filters({})).sha256  # the last 7 days, everything
    page = client.get(reverse("oversight_report"))
    assert page.status_code == 200
    assert expected in page.text
    printed = client.get(reverse("oversight_report_print"))
    assert expected in printed.text
    downloaded = client.get(reverse("oversight_report_csv"))
    assert downloaded["Content-Disposition"].startswith('attachment; filename="oversight-report-')
    lines = list(csv.reader(io.StringIO(downloaded.content.decode())))
    assert lines[0] == ["Oversight report", "sha256", expected]
    as_json = json.loads(client.get(reverse("oversight_report_json")).content)
    assert as_json["sha256"] == expected
    assert hashlib.sha256(canonical(as_json["report"]).encode()).hexdigest() == expected
    events = AuditEvent.objects.filter(verb__startswith="oversight_report.").order_by("id")
    assert [(e.verb, e.after["output"], e.after["sha256"]) for e in events] == [
        ("oversight_report.viewed", "page", expected),
        ("oversight_report.viewed", "print", expected),
        ("oversight_report.downloaded", "csv", expected),
        ("oversight_report.downloaded", "json", expected),
    ]
    assert {e.actor_label for e in events} == {"max"}


def test_the_default_period_is_the_last_seven_days(db):
    period, scope = report_filters({})
    assert (period.days, period.end, scope.kind) == (7, timezone.localdate(), "all")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"from": "2026-13-01"}, "is not a date"),
        ({"from": "yesterday"}, "is not a date"),
        ({"from": "2026-06-10", "to": "2026-06-01"}, "From must be on or before To"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "at most 366 days"),
        ({"to": "2026-06-01"}, "Give the first day"),
        ({"days": "8"}, "Days must be one of"),
        ({"category": "999999"}, "no such category"),
        ({"agent": "x"}, "no such agent"),
        ({"category": "1", "agent": "1"}, "not both"),
        ({"from": "2026-06-01\x00"}, "NUL"),
    ],
)
def test_bad_filters_get_a_message_and_write_nothing(db, params, message):
    with pytest.raises(ReportFilterError, match=message):
        report_filters(params)


@pytest.mark.parametrize("name", URLS)
def test_a_bad_filter_on_the_page_or_a_file_writes_nothing(client, manager, name):
    client.force_login(manager)
    response = client.get(reverse(name), {"from": "2026-06-10", "to": "2026-06-01"})
    assert response.status_code == 400
    assert "From must be on or before To" in response.text
    nul = client.get(reverse(name), {"from": "2026-06-01\x00"})
    assert nul.status_code in (400, 422)
    assert "NUL" in nul.text
    assert not AuditEvent.objects.filter(verb__startswith="oversight_report.").exists()


@pytest.mark.parametrize("name", URLS)
def test_reviewers_may_not_read_it_and_it_takes_no_post(client, alice, admin_user, name):
    client.force_login(alice)
    assert client.get(reverse(name)).status_code == 403
    client.force_login(admin_user)
    assert client.get(reverse(name)).status_code == 200
    assert client.post(reverse(name)).status_code == 405
    assert AuditEvent.objects.filter(verb__startswith="oversight_report.").count() == 1


def test_the_metrics_tabs_link_to_it(client, manager):
    client.force_login(manager)
    page = client.get(reverse("metrics"))
    assert reverse("oversight_report") in page.text


def _report_link(page_text: str) -> str:
    match = re.search(r'href="(' + re.escape(reverse("oversight_report")) + r'[^"]*)"', page_text)
    assert match, "no link to the oversight report"
    return html.unescape(match.group(1))


def _selected_periods(page_text: str) -> list[str]:
    return re.findall(r'aria-current="true" href="\?days=(\d+)', page_text)


def test_from_the_metrics_tabs_it_opens_at_its_own_default_week(client, manager):
    client.force_login(manager)
    report = client.get(_report_link(client.get(reverse("metrics")).text))
    assert report.context["period"].days == 7
    assert _selected_periods(report.text) == ["7"]


def test_a_period_picked_on_the_metrics_pages_carries_over_and_shows_as_selected(client, manager):
    client.force_login(manager)
    report = client.get(_report_link(client.get(reverse("metrics"), {"days": "90"}).text))
    assert report.context["period"].days == 90
    assert _selected_periods(report.text) == ["90"]
    picked = client.get(reverse("oversight_report"), {"from": "2026-06-01", "to": "2026-06-07"})
    assert _selected_periods(picked.text) == []


def test_the_demo_manager_downloads_the_week_s_report(client, db):
    call_command("seed_demo", requests=40, quiet=True)
    client.force_login(User.objects.get(username="manager"))
    page = client.get(reverse("oversight_report"))
    assert page.status_code == 200
    response = client.get(reverse("oversight_report_csv"), {"days": "7"})
    assert response.status_code == 200
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    people = next(line for line in lines if line and line[0] == "People")
    assert int(people[1]) > 0  # the seed's week has decisions by people


def test_four_eyes_confirmations_and_their_agreement_are_in_the_report(
    agent, refunds, alice, carol
):
    refunds.four_eyes = True
    refunds.save()
    for second in ("approved", "approved"):
        request = escalated(agent, refunds)
        decide_request(request.pk, by=alice, outcome="approved")
        decide_request(request.pk, by=carol, outcome=second)
    report = oversight_report(today(), Scope("category", refunds.pk, refunds.name))
    (row,) = section(report, "four_eyes").rows
    assert row[:5] == ["Refunds", 2, 2, 2, 1.0]
    assert row[6:] == [0, 2]  # none settled by a third; alice and carol took part


def test_a_reversal_counts_in_the_reverse_rate_and_is_listed(seeded, agent, alice, manager):
    from reviews.services.reversals import reverse_action

    request = decide(agent, seeded, alice, "approved", 15.0)
    reverse_action(request.pk, by=manager, reason="Refunded twice", correction="Claw it back")
    report = oversight_report(today(), Scope("all"))
    volumes = rows_by_first(report, "volumes")
    assert volumes["People"][1] == 4 and volumes["People"][5] == 1
    assert volumes["People"][9] == 0.25
    assert volumes["All decisions"][5] == 1
    (row,) = section(report, "reversals").rows
    assert row[1].startswith(f"#{request.pk} ")
    assert row[4:] == ["Web", "max", "Refunded twice", "Claw it back"]


def test_what_each_person_did_reads_in_words_an_auditor_knows(seeded, agent, alice, admin_user):
    """A reversal is not shown as one more "decision", nor a hold by a code word."""
    from reviews.services.hold_control import start_hold
    from reviews.services.reversals import reverse_action

    request = decide(agent, seeded, alice, "approved", 15.0)
    reverse_action(request.pk, by=admin_user, reason="Refunded twice", correction="Claw it back")
    start_hold(by=admin_user, level="hold", scope="everything", reason="Audit week")
    people = rows_by_first(oversight_report(today(), Scope("all")), "people")
    assert people["alice"][3:] == [3, "decided 3"]
    assert people["ada"][3:] == [2, "reversed 1, holds started 1"]


def test_a_stop_s_rejections_and_a_check_s_decision_are_not_counted_as_decided(
    agent, refunds, support_queue, alice, carol, admin_user
):
    """What a stop rejected is the stop, not the person's reviews; a known-answer check is
    counted once, as a check decided; a hold's start and end are two actions of one hold."""
    from reviews.models import Queue
    from reviews.services import known_answers
    from reviews.services.hold_control import end_hold, start_hold

    source = escalated(agent, refunds, title="Refund 9,000 EUR to a closed account")
    decide_request(source.pk, by=carol, outcome="rejected", reason="The account is closed.")
    Queue.objects.filter(pk=support_queue.pk).update(known_answers=True, known_answer_rate=0.02)
    support_queue.refresh_from_db()
    check = known_answers.add_check(support_queue, seed="x", assignee=alice)
    decide_request(check.pk, by=alice, outcome="approved", reason="looked")
    escalated(agent, refunds)
    escalated(agent, refunds)
    held = start_hold(by=admin_user, level="hold", scope="everything", reason="Audit week")
    end_hold(held.pk, by=admin_user, reason="Audit done")
    start_hold(
        by=admin_user, level="stop", scope="agent", agent=agent, reason="Incident",
        reject_pending=True,
    )  # fmt: skip

    people = rows_by_first(oversight_report(today(), Scope("all")), "people")
    assert people["alice"][3:] == [1, "known-answer checks decided 1"]
    assert people["ada"][3:] == [
        5, "rejected by a stop 2, holds started 1, holds ended 1, stops started 1",
    ]  # fmt: skip


def test_holds_and_stops_in_the_period_carry_who_when_and_why(agent, refunds, admin_user):
    from reviews.services.hold_control import end_hold, start_hold

    hold = start_hold(by=admin_user, level="hold", scope="everything", reason="Audit week")
    end_hold(hold.pk, by=admin_user, reason="Audit done")
    start_hold(
        by=admin_user, level="stop", scope="category", category=refunds, reason="Bad refunds"
    )
    report = oversight_report(today(), Scope("category", refunds.pk, refunds.name))
    rows = section(report, "holds").rows
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("Hold", "everything", "ada", "Audit week"),
        ("Stop", "category Refunds", "ada", "Bad refunds"),
    ]
    assert rows[0][7:] == ["ada", "Audit done"] and rows[1][6] is None


def test_known_answer_results_have_their_section_and_no_other_figure_counts_checks(
    agent, refunds, support_queue, alice, carol, settings
):
    """Real checks decided by a person: caught and missed per reviewer with the Wilson bounds
    and the flag, while volumes, reviewers and submissions leave the copies out."""
    from reviews.models import Agent, Queue
    from reviews.services import known_answers

    settings.HITL_KNOWN_ANSWER_CATCH_BAR = 0.9
    source = escalated(agent, refunds, title="Refund 9,000 EUR to a closed account")
    decide_request(source.pk, by=carol, outcome="rejected", reason="The account is closed.")
    Queue.objects.filter(pk=support_queue.pk).update(known_answers=True, known_answer_rate=0.02)
    support_queue.refresh_from_db()
    before = oversight_report(today(), Scope("all"))
    for n, outcome in enumerate(["rejected", "approved", "approved", "approved"]):
        check = known_answers.add_check(support_queue, seed=str(n), assignee=alice)
        assert check is not None and check.is_check
        decide_request(
            check.pk, by=alice, outcome=outcome, reason="looked",
            now=timezone.now() - timedelta(minutes=1),
        )  # fmt: skip

    report = oversight_report(today(), Scope("all"))
    rows = rows_by_first(report, "known_answers")
    # 1 of 4: Wilson 95% interval 4.6% to 69.9%, wholly under the 90% bar: flagged.
    assert rows["alice"] == [
        "alice", 4, 1, 3, 0.25, 0.0456, 0.6994, "misses known answers",
    ]  # fmt: skip
    assert rows["All people"][1:4] == [4, 1, 3]
    assert "Support (2%)" in section(report, "known_answers").note
    for key in ("volumes", "reviewers"):
        assert section(report, key).rows == section(before, key).rows, key
    assert section(report, "volumes").note == section(before, "volumes").note
    scoped = oversight_report(today(), Scope("category", refunds.pk, refunds.name))
    assert rows_by_first(scoped, "known_answers")["alice"][1] == 4
    other = Agent.objects.create(name="billing-bot")
    elsewhere = oversight_report(today(), Scope("agent", other.pk, other.name))
    assert section(elsewhere, "known_answers").rows == []
