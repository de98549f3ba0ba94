"""One-tap email links: the assignment and reminder emails carry Approve and Reject links when
the queue has them on; the link's page shows the request and decides only on its POST, once,
as the link's reviewer, on the version the email showed; every refusal says why and writes
nothing. Emails go through the real outbox into Django's locmem mailbox."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from reviews.channels import email_link_decisions
from reviews.models import ActionLink, AuditEvent, Decision, Notification, ReviewRequest
from reviews.services.decisions import decide_request
from reviews.services.notify import notify_assignee, notify_new_request
from reviews.tasks import send_notification

from .bad_input import NUL_TEXT, row_counts
from .test_decision_trust import revise
from .test_inbox_views import submit

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://[^\s\"<>]+/email/decide/([A-Za-z0-9_-]{43})/")


@pytest.fixture
def links_on(support_queue):
    support_queue.email_links = True
    support_queue.save()
    return support_queue


@pytest.fixture
def pending(agent, refunds, links_on, alice):
    request = submit(agent, refunds)
    assert request.assignee == alice  # the least loaded; ties go to the first member
    return request


def deliver_email(request: ReviewRequest, kind: str = Notification.Kind.ASSIGNED):
    """Send the request's email of `kind` through the outbox; the message as sent."""
    note = Notification.objects.get(request=request, kind=kind, channel="email")
    assert send_notification(note.pk) == "succeeded"
    return mail.outbox[-1]


def links_in(message) -> dict[str, str]:
    """{'approve': path, 'reject': path} from a sent email's plain text."""
    found = {}
    for line in message.body.splitlines():
        if match := LINK.search(line):
            verb = "approve" if line.startswith("Approve") else "reject"
            found[verb] = reverse("email_link", args=[match.group(1)])
    return found


@pytest.fixture
def links(pending):
    return links_in(deliver_email(pending))


def nothing_written(before: dict[str, int], request: ReviewRequest) -> None:
    assert row_counts() == before
    assert ReviewRequest.objects.get(pk=request.pk).status == "pending"
    assert not ActionLink.objects.filter(used_at__isnull=False).exists()


# --- the emails -----------------------------------------------------------------------------


def test_the_assignment_email_carries_approve_and_reject_links_in_text_and_html(
    agent, refunds, links_on, alice, settings
):
    settings.SITE_URL = "https://review.example.com"
    request = submit(agent, refunds, title="Refund <b>120</b> & more")
    message = deliver_email(request)
    assert message.to == ["alice@example.com"]
    assert message.subject.startswith("Assigned to you: “Refund <b>120</b> & more”")
    assert "A review has been assigned to you." in message.body
    links = links_in(message)
    assert set(links) == {"approve", "reject"}
    assert "Approve (Refund in full): https://review.example.com/email/decide/" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    for path in links.values():
        assert f'href="https://review.example.com{path}"' in html
    # Agent text is escaped in the HTML; the plain text is plain.
    assert "Refund &lt;b&gt;120&lt;/b&gt; &amp; more" in html and "<b>120" not in html
    assert "Refund in full" in html and "Amount" in html and "Open in the inbox" in html
    # Only hashes are kept, one per link, bound to alice, version 1, the deadline.
    rows = ActionLink.objects.order_by("verb")
    assert [(r.verb, r.user, r.proposal_version, r.expires_at) for r in rows] == [
        ("approve", alice, 1, request.deadline),
        ("reject", alice, 1, request.deadline),
    ]
    raw = [LINK.search(line).group(1) for line in message.body.splitlines() if LINK.search(line)]
    assert not ActionLink.objects.filter(token_hash__in=raw).exists()


def test_a_queue_with_links_off_gets_no_assignment_email_and_plain_reminders(
    agent, refunds, alice, django_capture_on_commit_callbacks
):
    request = submit(agent, refunds)
    assert not Notification.objects.filter(request=request).exists()
    notify_assignee(request, Notification.Kind.REMINDER)
    message = deliver_email(request, Notification.Kind.REMINDER)
    assert "/email/decide/" not in message.body
    assert "/email/decide/" not in message.alternatives[0][0]
    assert ActionLink.objects.count() == 0


def test_the_reminder_carries_fresh_links_too(pending):
    notify_assignee(pending, Notification.Kind.REMINDER)
    message = deliver_email(pending, Notification.Kind.REMINDER)
    assert message.subject.startswith("Reminder:")
    assert set(links_in(message)) == {"approve", "reject"}
    assert ActionLink.objects.filter(request=pending).count() == 4  # assignment + reminder


def test_a_title_with_line_breaks_is_one_line_in_the_subject(agent, refunds, links_on):
    request = submit(agent, refunds, title="Refund\r\nBcc: someone@example.net")
    message = deliver_email(request)
    assert message.subject.startswith("Assigned to you: “Refund Bcc: someone@example.net”")
    assert message.recipients() == ["alice@example.com"]


def test_only_the_verbs_the_request_allows_get_a_link(agent, refunds, links_on):
    no_reject = submit(agent, refunds, allowed_decisions=["approve", "modify"])
    assert set(links_in(deliver_email(no_reject))) == {"approve"}
    question = submit(agent, refunds, allowed_decisions=["respond"])
    assert links_in(deliver_email(question)) == {}
    assert not ActionLink.objects.filter(request=question).exists()


def test_a_new_request_costs_no_query_while_no_channel_is_on(
    agent, refunds, django_assert_num_queries
):
    request = submit(agent, refunds)
    with django_assert_num_queries(0):
        assert notify_new_request(request, timezone.now()) == []


# --- the page: GET reads, POST decides --------------------------------------------------------


def test_a_scanner_fetching_the_links_decides_nothing(client, pending, links):
    before = row_counts()
    for path in [*links.values(), *links.values()]:
        response = client.get(path)
        assert response.status_code == 200
        assert response["Cache-Control"].count("no-store") == 1
        # The origin alone, never the path with the token (no-referrer would make the form's
        # POST carry Origin: null, which the CSRF check refuses: the browser test taps it).
        assert response["Referrer-Policy"] == "strict-origin"
    nothing_written(before, pending)
    assert client.head(links["approve"]).status_code == 405
    nothing_written(before, pending)


def test_the_confirmation_page_shows_the_request_and_who_decides(client, pending, links):
    page = client.get(links["approve"]).content.decode()
    assert pending.title in page and "Refund in full" in page and "Amount" in page
    assert "Deciding as <strong" in page and "alice" in page and "version 1" in page
    assert 'name="reason"' not in page
    reject = client.get(links["reject"]).content.decode()
    assert 'name="reason"' in reject and "required" in reject


def test_one_tap_approves_as_the_reviewer_through_the_email_channel(client, pending, links, alice):
    response = client.post(links["approve"])
    assert response.status_code == 200
    page = response.content.decode()
    assert "Approved." in page and "The agent is told in 5 seconds" in page and "Undo" in page
    decision = Decision.objects.get(request=pending)
    assert (decision.decided_by, decision.channel, decision.outcome) == (alice, "email", "approved")
    assert (decision.chosen_option, decision.proposal_version) == ("A", 1)
    event = AuditEvent.objects.get(request=pending, verb="decided.approved")
    assert event.actor_user == alice and event.after["decision"]["channel"] == "email"
    assert ActionLink.objects.get(verb="approve").used_at is not None
    assert ActionLink.objects.get(verb="reject").used_at is None


def test_a_link_works_once(client, pending, links):
    assert client.post(links["approve"]).status_code == 200
    before = row_counts()
    for response in (client.post(links["approve"]), client.get(links["approve"])):
        assert response.status_code == 410
        assert "You used this link at" in response.content.decode()
    assert row_counts() == before


def test_the_other_link_then_says_who_decided(client, pending, links):
    client.post(links["approve"])
    response = client.get(links["reject"])
    assert response.status_code == 409
    assert "Already approved by alice at" in response.content.decode()


def test_a_rejection_needs_a_reason_and_records_it(client, pending, links):
    before = row_counts()
    response = client.post(links["reject"], {"reason": "   "})
    assert response.status_code == 422
    assert "Say why it is rejected" in response.content.decode()
    nothing_written(before, pending)
    response = client.post(links["reject"], {"reason": "Over the limit."})
    assert response.status_code == 200 and "Rejected." in response.content.decode()
    decision = Decision.objects.get(request=pending)
    assert (decision.outcome, decision.reason, decision.channel) == (
        "rejected",
        "Over the limit.",
        "email",
    )


def test_a_revision_after_the_email_makes_its_links_stale(client, pending, links):
    revise(pending, 900)
    before = row_counts()
    for response in (client.get(links["approve"]), client.post(links["approve"])):
        assert response.status_code == 409
        text = response.content.decode()
        assert "The agent revised its proposal after this email (version 1 → 2" in text
        assert "amount 120 → 900" in text
        assert f"/inbox/{pending.pk}/" in text
    nothing_written(before, pending)


def test_a_request_decided_in_the_inbox_says_by_whom(client, pending, links, carol):
    decide_request(pending.pk, by=carol, outcome="approved")
    before = row_counts()
    for response in (client.get(links["reject"]), client.post(links["reject"], {"reason": "x"})):
        assert response.status_code == 409
        assert "Already approved by carol at" in response.content.decode()
    assert row_counts() == before
    assert not ActionLink.objects.filter(used_at__isnull=False).exists()


def test_a_link_expires_with_the_deadline(client, pending, links):
    past = timezone.now() - timedelta(minutes=1)
    ReviewRequest.objects.filter(pk=pending.pk).update(deadline=past)
    ActionLink.objects.update(expires_at=past)
    before = row_counts()
    for response in (client.get(links["approve"]), client.post(links["approve"])):
        assert response.status_code == 410
        assert "This link expired at" in response.content.decode()
    nothing_written(before, pending)


def test_a_reviewer_taken_off_the_queue_is_refused(client, pending, links, alice, support_queue):
    support_queue.members.remove(alice)
    before = row_counts()
    for response in (client.get(links["approve"]), client.post(links["approve"])):
        assert response.status_code == 403
        text = response.content.decode()
        assert "can no longer decide this request" in text
        assert pending.title not in text and "/inbox/" not in text
    nothing_written(before, pending)


def test_links_turned_off_for_the_queue_stop_working(client, pending, links, links_on):
    links_on.email_links = False
    links_on.save()
    assert client.post(links["approve"]).status_code == 410
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"


def test_the_result_page_undoes_within_the_window(client, pending, links):
    client.post(links["approve"])
    before = row_counts()
    assert client.post(links["reject"] + "undo/").status_code == 409  # not the deciding link
    assert row_counts() == before
    response = client.post(links["approve"] + "undo/")
    assert response.status_code == 200 and "Undone." in response.content.decode()
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"
    assert not Decision.objects.filter(request=pending).exists()
    assert client.get(links["approve"] + "undo/").status_code == 405


def test_undo_after_the_agent_was_told_is_refused(client, pending, links):
    client.post(links["approve"])
    Decision.objects.update(effective_at=timezone.now() - timedelta(seconds=1))
    response = client.post(links["approve"] + "undo/")
    assert response.status_code == 409 and "Too late to undo" in response.content.decode()
    assert ReviewRequest.objects.get(pk=pending.pk).status == "approved"


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token", ["A" * 43, "short", "x" * 5000, "a.b-c_d" * 6 + "e", "%C3%A9" * 10]
)
def test_unknown_and_garbage_tokens_are_404(client, pending, links, token):
    before = row_counts()
    for response in (client.get(f"/email/decide/{token}/"), client.post(f"/email/decide/{token}/")):
        assert response.status_code == 404
        assert "Link not recognised" in response.content.decode()
    assert row_counts() == before


def test_unstorable_or_huge_reasons_are_refused_with_nothing_written(client, pending, links):
    before = row_counts()
    response = client.post(links["reject"], {"reason": NUL_TEXT})
    assert response.status_code == 422 and "NUL" in response.content.decode()
    response = client.post(links["reject"], {"reason": "x" * 2001})
    assert response.status_code == 422
    assert "under 2,000 characters" in response.content.decode()
    nothing_written(before, pending)


def test_a_lone_surrogate_is_refused(client, pending, links):
    before = row_counts()
    # Over HTTP, bytes that are no UTF-8 (a lone surrogate's) never reach a view as text:
    # Django reads them as U+FFFD. In a token they match no link.
    assert client.get(links["approve"][:-2] + "%ED%A0%80/").status_code == 404
    # Handed to the tap directly, one is refused before anything is written.
    link = ActionLink.objects.get(verb="reject")
    with pytest.raises(ValidationError, match="lone surrogates"):
        email_link_decisions.decide(link, reason="why \ud800")
    nothing_written(before, pending)


def test_a_post_without_the_csrf_token_decides_nothing(pending, links):
    before = row_counts()
    response = Client(enforce_csrf_checks=True).post(links["approve"])
    assert response.status_code == 403
    nothing_written(before, pending)


def test_other_methods_are_refused(client, pending, links):
    assert client.put(links["approve"]).status_code == 405
    assert client.delete(links["approve"]).status_code == 405


# --- two taps at once -----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_taps_at_once_decide_once(agent, refunds, links_on, alice):
    request = submit(agent, refunds)
    path = links_in(deliver_email(request))["approve"]
    barrier = threading.Barrier(2)
    statuses = []

    def tap() -> None:
        try:
            barrier.wait()
            statuses.append(Client().post(path).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=tap) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 410]
    assert Decision.objects.filter(request=request).count() == 1
    assert AuditEvent.objects.filter(request=request, verb="decided.approved").count() == 1


def test_the_email_and_its_page_show_the_action_approve_would_approve(client, pending, links):
    message = mail.outbox[-1]
    html = message.alternatives[0][0]
    assert "Proposed action" in html and "Currency" in html
    assert 'Proposed action: {"action": "refund", "amount": 120, "currency": "EUR"}' in message.body
    page = client.get(links["approve"]).content.decode()
    assert "What you approve" in page
    assert "&quot;amount&quot;: 120" in page and "&quot;currency&quot;: &quot;EUR&quot;" in page


def test_after_an_undo_the_emails_other_link_decides_nothing(client, pending, links):
    client.post(links["approve"])
    assert client.post(links["approve"] + "undo/").status_code == 200
    before = row_counts()
    for response in (client.get(links["reject"]), client.post(links["reject"], {"reason": "no"})):
        assert response.status_code == 410
        assert "You used another link to this request at" in response.content.decode()
    assert row_counts() == before
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"


def test_links_turned_off_stay_dead_when_turned_on_again(admin_client, client, pending, links):
    url = reverse("queue_edit", args=[pending.queue.pk])
    members = [m.pk for m in pending.queue.members.all()]
    data = {"name": pending.queue.name, "slug": pending.queue.slug, "members": members}
    assert admin_client.post(url, data).status_code == 302  # the box unticked
    assert admin_client.post(url, {**data, "email_links": "on"}).status_code == 302

    response = client.post(links["approve"])
    assert response.status_code == 410 and "This link expired at" in response.content.decode()
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"
