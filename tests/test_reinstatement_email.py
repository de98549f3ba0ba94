"""The managers hear that a category's gate is back through the outbox: a real SMTP server on
127.0.0.1 refuses, the email is retried, the switch stands meanwhile."""

from __future__ import annotations

import socketserver
import threading
from email import message_from_bytes

import pytest
from django.utils import timezone

from reviews.models import AuditEvent, Category, Notification
from reviews.services.autonomy import reinstate_gate, switch_to_autonomous
from reviews.services.outbox import dispatch_due
from reviews.tasks import send_notification

from .conftest import make_user

pytestmark = pytest.mark.django_db


class MailServer:
    """Enough SMTP for smtplib: turns away the first `refusals` connections with 421 (busy, try
    later), answers 550 to a recipient in `unknown`, and keeps what it accepts."""

    def __init__(self, refusals: int = 0, unknown: tuple[str, ...] = ()) -> None:
        self.refusals = refusals
        self.unknown = unknown
        self.received: list[tuple[list[str], bytes]] = []
        owner = self

        class Session(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                if owner.refusals > 0:
                    owner.refusals -= 1
                    self.reply("421 mail.example.com busy, try again later")
                    return
                self.reply("220 mail.example.com ESMTP")
                recipients: list[str] = []
                while line := self.rfile.readline():
                    command = line.decode().strip()
                    verb = command[:4].upper()
                    if verb == "RCPT":
                        address = command.split(":", 1)[1].strip(" <>")
                        if address in owner.unknown:
                            self.reply("550 5.1.1 no such user")
                            continue
                        recipients.append(address)
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = b"".join(iter(self.rfile.readline, b".\r\n"))
                        owner.received.append((recipients, data))
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:  # EHLO, MAIL, RSET, NOOP
                        self.reply("250 mail.example.com")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MailServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def use_smtp(settings, server: MailServer) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
    settings.EMAIL_TIMEOUT = 5


@pytest.fixture
def autonomous(refunds, manager):
    switch_to_autonomous(refunds.pk, by=manager, reason="Ready", now=timezone.now())
    return refunds


def test_the_managers_email_is_retried_until_the_mail_server_takes_it(
    settings, autonomous, manager, django_capture_on_commit_callbacks
):
    no_address = make_user("nomail", "managers")
    no_address.email = ""
    no_address.save()
    with MailServer(refusals=1) as server:
        use_smtp(settings, server)
        with django_capture_on_commit_callbacks(execute=True):
            assert reinstate_gate(autonomous.pk, reason="Three errors in a row.")
        # Recipients without an address are skipped, as before the outbox.
        note = Notification.objects.get()
        assert (note.kind, note.channel, note.target) == ("reinstated", "email", manager.email)
        assert note.recipient == manager and note.request is None

        assert send_notification(note.pk) == "pending"  # the server turned it away
        note.refresh_from_db()
        assert note.attempts == 1 and "421" in note.last_error
        assert server.received == []
        # The switch stands meanwhile.
        autonomous.refresh_from_db()
        assert autonomous.mode == Category.Mode.GATE
        assert AuditEvent.objects.filter(verb="category.reinstated").count() == 1

        # Once the backoff has passed, beat's tick hands it out and a worker sends it.
        Notification.objects.filter(pk=note.pk).update(next_attempt_at=timezone.now())
        assert dispatch_due(Notification, send_notification) == 1
        assert send_notification(note.pk, 1) == "succeeded"
    [(recipients, data)] = server.received
    assert recipients == [manager.email]
    assert "a human is back in the loop" in message_from_bytes(data)["Subject"]
    note.refresh_from_db()
    assert (note.state, note.attempts, note.last_error) == ("succeeded", 2, "")
    assert note.delivered_at is not None


def test_an_address_the_server_does_not_know_is_not_retried(settings, autonomous, manager):
    with MailServer(unknown=(manager.email,)) as server:
        use_smtp(settings, server)
        reinstate_gate(autonomous.pk, reason="Three errors in a row.")
        note = Notification.objects.get()
        assert send_notification(note.pk) == "failed"
    note.refresh_from_db()
    assert note.attempts == 1 and "recipient refused" in note.last_error


def test_an_admin_re_sends_an_email_that_gave_up(settings, autonomous, manager, admin_user, client):
    with MailServer(unknown=(manager.email,)) as server:
        use_smtp(settings, server)
        reinstate_gate(autonomous.pk, reason="Three errors in a row.")
        note = Notification.objects.get()
        assert send_notification(note.pk) == "failed"
        server.unknown = ()  # the mailbox now exists
        client.force_login(admin_user)
        page = client.get(f"/admin/reviews/notification/{note.pk}/change/")
        resend = f"/admin/reviews/notification/{note.pk}/resend/"
        assert resend.encode() in page.content
        assert client.post(resend).status_code == 302
        note.refresh_from_db()
        assert (note.state, note.attempts) == ("pending", 0)
        assert send_notification(note.pk) == "succeeded"
    assert [recipients for recipients, _ in server.received] == [[manager.email]]
    event = AuditEvent.objects.get(verb="notification.resent")
    assert event.actor_user == admin_user
    assert event.before == {"delivery": note.pk, "state": "failed", "attempts": 1}
