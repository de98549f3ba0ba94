"""Web Push to reviewers' devices: what is pushed and when, encrypted and signed as a push
service checks it (a local one, tests/push_support.py), retried through the outbox while the
push service is down, and the devices a reviewer subscribes, lists and removes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from reviews.channels import push
from reviews.models import AuditEvent, Decision, Notification, PushSubscription, ReviewRequest
from reviews.services import outbox, push_devices
from reviews.services.assignment import hand_over_away_requests, set_away
from reviews.services.deadlines import remind_request
from reviews.vapid import development_keys

from .bad_input import BAD_JSON_VALUES, row_counts
from .push_support import PushService, unb64url, vapid_pair
from .test_inbox_views import HX, submit

PUSH = Notification.Channel.PUSH
State = Notification.State


@pytest.fixture
def vapid(settings):
    public, private = vapid_pair()
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = public, private
    settings.VAPID_SUBJECT = "mailto:ops@example.com"
    settings.HITL_PUSH_ALLOWED_HOSTS = ["127.0.0.1"]
    return public


@pytest.fixture
def service(vapid):
    service = PushService(vapid)
    yield service
    service.stop()


def subscribe(user, device) -> PushSubscription:
    subscription = push.parse_subscription(device.subscription())
    return push_devices.add_device(
        user, subscription, "Mozilla/5.0 (Linux; Android 14) Chrome/131"
    )[0]


def pushes_for(request: ReviewRequest) -> list[Notification]:
    return list(Notification.objects.filter(request=request, channel=PUSH).order_by("pk"))


def deliver(note: Notification) -> str:
    note.refresh_from_db()
    return outbox.deliver(Notification, note.pk, attempts=note.attempts)


# --- what is pushed --------------------------------------------------------------------------


def test_it_pushes_a_new_assignment_encrypted_for_the_device_and_signed(
    service, alice, carol, agent, refunds
):
    phones = {alice.pk: service.device("alice"), carol.pk: service.device("carol")}
    subscribe(alice, phones[alice.pk])
    subscribe(carol, phones[carol.pk])

    request = submit(agent, refunds, title="Refund 120 EUR to Globex")

    [note] = pushes_for(request)
    assert note.kind == Notification.Kind.ASSIGNED and note.recipient_id == request.assignee_id
    assert deliver(note) == State.SUCCEEDED, service.errors
    [got] = service.received
    assert got.path == f"/push/{'alice' if request.assignee_id == alice.pk else 'carol'}"
    assert got.message["title"] == "New review for you"
    assert got.message["body"].startswith("Refund 120 EUR to Globex\nDue in ")
    assert got.message["url"] == f"/inbox/{request.pk}/"
    assert got.message["tag"] == f"request-{request.pk}"
    assert "ttl" not in got.message
    assert 60 <= int(got.headers["ttl"]) <= 3600  # the category's hour, not longer
    device = PushSubscription.objects.get(user_id=request.assignee_id)
    assert device.last_success_at is not None
    assert service.errors == []


def test_a_pem_private_key_signs_too(service, settings, alice, agent, refunds):
    key = push.vapid_key(settings.VAPID_PRIVATE_KEY)
    settings.VAPID_PRIVATE_KEY = key.private_pem().decode()
    subscribe(alice, service.device("alice"))
    request = submit(agent, refunds)
    notes = pushes_for(request)
    assert [deliver(n) for n in notes] == [State.SUCCEEDED] * len(notes)
    assert len(service.received) == len(notes) and service.errors == []


def test_it_pushes_a_reassignment_to_the_new_assignee(service, alice, carol, agent, refunds):
    subscribe(carol, service.device("carol"))
    request = submit(agent, refunds)
    if request.assignee_id != alice.pk:
        request.assignee = alice
        request.save(update_fields=["assignee"])
    set_away(alice, timezone.now() + timedelta(days=1))

    assert hand_over_away_requests() == 1

    [note] = [n for n in pushes_for(request) if n.kind == Notification.Kind.REASSIGNED]
    assert note.recipient_id == carol.pk
    assert deliver(note) == State.SUCCEEDED
    [got] = [r for r in service.received if r.message["title"] == "Reassigned to you"]
    assert got.path == "/push/carol" and got.message["url"] == f"/inbox/{request.pk}/"


def test_it_pushes_a_reminder_with_the_minutes_left(service, alice, carol, agent, refunds):
    subscribe(alice, service.device("alice"))
    subscribe(carol, service.device("carol"))
    request = submit(agent, refunds)
    now = request.deadline - timedelta(minutes=12)

    assert remind_request(request.pk, now=now)

    [note] = [n for n in pushes_for(request) if n.kind == Notification.Kind.REMINDER]
    assert deliver(note) == State.SUCCEEDED
    [got] = [r for r in service.received if r.message["title"].startswith("Due")]
    assert got.message["title"] == "Due in 12 minutes"
    assert got.message["url"] == f"/inbox/{request.pk}/"
    assert got.message["tag"] == f"request-{request.pk}"  # it replaces the assignment's notice
    reminded = AuditEvent.objects.get(verb="reminded", request=request)
    assert "push" in reminded.after["channels"]


def test_agent_text_is_pushed_short_and_plain(service, alice, carol, agent, refunds):
    subscribe(alice, service.device("alice"))
    subscribe(carol, service.device("carol"))
    title = "<b>Refund</b>\x1b[31m\nnow\u202e " + "x" * 200
    request = submit(agent, refunds, title=title)
    [note] = pushes_for(request)
    deliver(note)
    body = service.received[0].message["body"]
    first_line = body.split("\n")[0]
    assert first_line.startswith("<b>Refund</b> [31m now xxx") and len(first_line) == 80
    assert first_line.endswith("…") and "\x1b" not in body and "\u202e" not in body


def test_the_time_left_reads_naturally(vapid, alice, carol, agent, refunds):
    request = submit(agent, refunds)
    at = request.deadline
    reminder, assigned = Notification.Kind.REMINDER, Notification.Kind.ASSIGNED
    assert push.message(request, reminder, at - timedelta(minutes=1))["title"] == "Due in 1 minute"
    assert push.message(request, reminder, at - timedelta(hours=5))["title"] == "Due in 5 hours"
    assert push.message(request, reminder, at + timedelta(seconds=1))["title"] == "Due now"
    late = push.message(request, assigned, at + timedelta(minutes=3))
    assert late["body"].endswith("\nOverdue") and late["ttl"] == push.MIN_TTL_SECONDS


def test_push_costs_no_query_while_it_is_not_set_up(
    settings, alice, agent, refunds, django_assert_num_queries
):
    settings.VAPID_PUBLIC_KEY = settings.VAPID_PRIVATE_KEY = ""
    request = submit(agent, refunds)
    with django_assert_num_queries(0):
        assert push.assignment_notes(request, Notification.Kind.ASSIGNED, timezone.now()) == []
    assert not Notification.objects.filter(channel=PUSH).exists()


def test_a_reviewer_without_devices_gets_no_push_rows(vapid, alice, carol, agent, refunds):
    request = submit(agent, refunds)
    assert pushes_for(request) == []


# --- the push service's answers ------------------------------------------------------------


def test_a_gone_subscription_is_removed_and_not_retried(service, alice, carol, agent, refunds):
    subscribe(alice, service.device("alice"))
    subscribe(carol, service.device("carol"))
    service.status = 410
    request = submit(agent, refunds)
    [note] = pushes_for(request)

    assert deliver(note) == State.FAILED

    note.refresh_from_db()
    assert note.last_status_code == 410 and "gone" in note.last_error
    assert not PushSubscription.objects.filter(user_id=request.assignee_id).exists()
    assert PushSubscription.objects.count() == 1  # the other reviewer's phone is untouched


def test_a_push_service_that_is_down_is_retried_until_it_is_back(
    service, alice, carol, agent, refunds
):
    subscribe(alice, service.device("alice"))
    subscribe(carol, service.device("carol"))
    service.stop()  # nothing listens on its port: connection refused
    request = submit(agent, refunds)
    [note] = pushes_for(request)

    assert deliver(note) == State.PENDING
    note.refresh_from_db()
    assert note.attempts == 1 and "ConnectionError" in note.last_error
    assert note.next_attempt_at > timezone.now()  # a backoff, for dispatch_due_work

    service.restart()
    service.status = 500
    assert deliver(note) == State.PENDING
    note.refresh_from_db()
    assert note.last_status_code == 500 and "push service trouble" in note.last_error

    service.status = 201
    assert deliver(note) == State.SUCCEEDED
    note.refresh_from_db()
    assert note.attempts == 3 and note.delivered_at is not None and note.last_error == ""
    assert [r.message["url"] for r in service.received] == [f"/inbox/{request.pk}/"]


def test_throttling_is_retried_and_a_refusal_is_not(service, alice, carol, agent, refunds):
    subscribe(alice, service.device("alice"))
    subscribe(carol, service.device("carol"))
    first, second = submit(agent, refunds), submit(agent, refunds)
    service.status = 429
    assert deliver(pushes_for(first)[0]) == State.PENDING
    service.status = 400
    assert deliver(pushes_for(second)[0]) == State.FAILED


def test_the_inbox_decides_while_the_push_service_is_down(
    service, client, alice, carol, agent, refunds
):
    subscribe(alice, service.device("alice"))
    subscribe(carol, service.device("carol"))
    service.stop()
    request = submit(agent, refunds)
    assignee = alice if request.assignee_id == alice.pk else carol
    client.force_login(assignee)

    response = client.post(
        reverse("inbox_decide", args=[request.pk]), {"version": 1, "outcome": "approve"}, **HX
    )

    assert response.status_code == 200
    assert Decision.objects.get(request=request).outcome == "approved"
    [note] = pushes_for(request)
    assert note.state == State.PENDING and note.attempts == 0  # left to the outbox


def test_an_endpoint_that_now_resolves_privately_is_not_called(
    service, settings, alice, carol, agent, refunds
):
    subscribe(alice, service.device("alice"))
    subscribe(carol, service.device("carol"))
    settings.HITL_PUSH_ALLOWED_HOSTS = []  # checked again at send time
    request = submit(agent, refunds)
    [note] = pushes_for(request)
    assert deliver(note) == State.FAILED
    note.refresh_from_db()
    assert note.last_error.startswith("Not sent:") and service.received == []


def test_a_removed_device_fails_its_pending_push(service, alice, carol, agent, refunds):
    subscribe(alice, service.device("alice"))
    subscribe(carol, service.device("carol"))
    request = submit(agent, refunds)
    [note] = pushes_for(request)
    PushSubscription.objects.filter(user_id=request.assignee_id).delete()
    assert deliver(note) == State.FAILED
    note.refresh_from_db()
    assert "removed" in note.last_error


# --- subscribing, listing, removing ---------------------------------------------------------


def post_json(client: Client, body, **extra):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(reverse("push_subscribe"), data, content_type="application/json", **extra)


def test_a_reviewer_subscribes_a_device_and_sees_it_listed(service, client, alice):
    phone = service.device("alice")
    client.force_login(alice)

    response = post_json(
        client,
        phone.subscription(),
        HTTP_USER_AGENT="Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/131.0 Mobile Safari/537",
    )

    assert response.status_code == 201
    assert response.json()["device"] == "Chrome on Android"
    device = PushSubscription.objects.get()
    assert (device.user, device.endpoint, device.p256dh) == (alice, phone.endpoint, phone.p256dh)
    assert unb64url(device.auth) == phone.auth
    event = AuditEvent.objects.get(verb="push.device_added")
    assert event.actor_user == alice and event.after["push_service"] == "127.0.0.1"
    assert phone.p256dh not in json.dumps(event.after)  # no key material in the audit trail

    # The same browser again (new keys after a reinstall): the one device, refreshed.
    again = post_json(
        client, {**phone.subscription(), "keys": service.device("x").subscription()["keys"]}
    )
    assert again.status_code == 200 and PushSubscription.objects.count() == 1

    page = client.get(reverse("my_channels"))
    assert b"Chrome on Android" in page.content
    assert b"Turn on notifications on this device" in page.content
    assert f'data-vapid-key="{service.vapid_public}"'.encode() in page.content
    assert b"Send a test notification" in page.content


def test_the_test_notification_reaches_each_device(service, client, alice):
    subscribe(alice, service.device("alice-phone"))
    subscribe(alice, service.device("alice-laptop"))
    client.force_login(alice)

    response = client.post(reverse("push_test"), follow=True)

    assert b"Test notification sent to 2 devices." in response.content
    assert sorted(r.path for r in service.received) == ["/push/alice-laptop", "/push/alice-phone"]
    assert {r.message["title"] for r in service.received} == {"HITL Review"}


def test_the_test_notification_says_when_a_device_failed(service, client, alice):
    subscribe(alice, service.device("alice"))
    service.status = 503
    client.force_login(alice)
    response = client.post(reverse("push_test"), follow=True)
    assert b"Not delivered to Chrome on Android: HTTP 503" in response.content


def test_a_reviewer_removes_their_device(service, client, alice):
    device = subscribe(alice, service.device("alice"))
    client.force_login(alice)
    response = client.post(reverse("push_remove", args=[device.pk]), follow=True)
    assert response.status_code == 200 and b"gets no more pushes" in response.content
    assert not PushSubscription.objects.exists()
    assert AuditEvent.objects.filter(verb="push.device_removed", actor_user=alice).exists()


def test_another_reviewer_cannot_remove_or_take_your_device(service, client, alice, bob):
    phone = service.device("alice")
    device = subscribe(alice, phone)
    client.force_login(bob)

    assert client.post(reverse("push_remove", args=[device.pk])).status_code == 404
    taken = post_json(client, phone.subscription())
    assert taken.status_code == 409 and "someone else" in taken.json()["detail"]

    device.refresh_from_db()
    assert device.user == alice and device.p256dh == phone.p256dh
    assert b"Android" not in client.get(reverse("my_channels")).content
    assert not AuditEvent.objects.filter(actor_user=bob).exists()


def test_the_device_views_want_a_reviewer_and_a_post(service, client, alice, manager):
    device = subscribe(alice, service.device("alice"))
    urls = [
        reverse("push_subscribe"),
        reverse("push_remove", args=[device.pk]),
        reverse("push_test"),
    ]
    for url in urls:
        assert client.post(url).status_code == 302  # to the login page
    client.force_login(manager)
    for url in urls:
        assert client.post(url).status_code == 403
    client.force_login(alice)
    for url in urls:
        assert client.get(url).status_code == 405
    assert PushSubscription.objects.count() == 1


def _good(service) -> dict:
    return service.device("good").subscription()


BAD_SUBSCRIPTIONS = {
    "not JSON": lambda s: b"{endpoint",
    "not an object": lambda s: [1, 2],
    "endpoint not text": lambda s: {**_good(s), "endpoint": 42},
    "keys not an object": lambda s: {**_good(s), "keys": "p256dh"},
    "key not text": lambda s: {**_good(s), "keys": {**_good(s)["keys"], "auth": 16}},
    "NUL in the endpoint": lambda s: {**_good(s), "endpoint": _good(s)["endpoint"] + "\x00x"},
    "NUL in a key": lambda s: {**_good(s), "keys": {**_good(s)["keys"], "auth": "AAAA\x00AAAA"}},
    "short auth": lambda s: {**_good(s), "keys": {**_good(s)["keys"], "auth": "AAAA"}},
    "p256dh not base64url": lambda s: {
        **_good(s),
        "keys": {**_good(s)["keys"], "p256dh": "!" * 87},
    },
    "p256dh off the curve": lambda s: {
        **_good(s),
        "keys": {**_good(s)["keys"], "p256dh": "BA" + "A" * 85},
    },
    "plain http": lambda s: {**_good(s), "endpoint": "http://push.example.com/x"},
    "not a URL": lambda s: {**_good(s), "endpoint": "https://"},
    "loopback": lambda s: {**_good(s), "endpoint": "https://127.0.0.2/push/x"},
    "private": lambda s: {**_good(s), "endpoint": "https://10.1.2.3/push/x"},
    "link-local": lambda s: {**_good(s), "endpoint": "https://[fe80::1]/push/x"},
    "lone surrogate in the URL": lambda s: {**_good(s), "endpoint": "https://a.example/\ud800"},
    "bidi override in the URL": lambda s: {**_good(s), "endpoint": "https://a.example/\u202e"},
    "bad IPv6 literal": lambda s: {**_good(s), "endpoint": "https://[::1/push/x"},
    "not an address": lambda s: {**_good(s), "endpoint": "http://[zz]/push/x"},
    "endpoint too long": lambda s: {
        **_good(s),
        "endpoint": "https://push.example.com/" + "a" * 2000,
    },
}


@pytest.mark.parametrize("case", list(BAD_SUBSCRIPTIONS))
def test_a_bad_subscription_is_refused_and_nothing_is_written(service, client, alice, case):
    client.force_login(alice)
    body = BAD_SUBSCRIPTIONS[case](service)
    response = post_json(client, body)
    assert response.status_code in (400, 413), response.content
    assert response.json()["error"] == "refused" and response.json()["detail"]
    assert not PushSubscription.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("where", ["body", "endpoint", "auth", "extra"])
@pytest.mark.parametrize("name", list(BAD_JSON_VALUES))
def test_json_no_field_may_take_is_refused_wherever_it_is(service, client, alice, where, name):
    good = _good(service)
    value = BAD_JSON_VALUES[name]
    endpoint, p256dh, auth = (json.dumps(v) for v in (good["endpoint"], *good["keys"].values()))
    endpoint = value if where == "endpoint" else endpoint
    auth = value if where == "auth" else auth
    extra = f', "expirationTime": {value}' if where == "extra" else ""
    body = f'{{"endpoint": {endpoint}, "keys": {{"p256dh": {p256dh}, "auth": {auth}}}{extra}}}'
    client.force_login(alice)
    before = row_counts()

    response = post_json(client, value if where == "body" else body)

    assert 400 <= response.status_code < 500, response.content
    assert row_counts() == before


def test_a_huge_body_is_refused_unread(service, client, alice):
    client.force_login(alice)
    response = post_json(client, {**_good(service), "padding": "x" * 5000})
    assert response.status_code == 413 and not PushSubscription.objects.exists()


def test_a_reviewer_has_at_most_ten_devices(service, client, alice):
    for n in range(push_devices.MAX_DEVICES):
        subscribe(alice, service.device(f"d{n}"))
    client.force_login(alice)
    response = post_json(client, service.device("one-more").subscription())
    assert response.status_code == 400 and "remove one first" in response.json()["detail"]
    assert PushSubscription.objects.count() == push_devices.MAX_DEVICES


def test_without_vapid_keys_the_page_says_how_to_turn_push_on(settings, client, alice):
    settings.VAPID_PUBLIC_KEY = settings.VAPID_PRIVATE_KEY = ""
    client.force_login(alice)
    page = client.get(reverse("my_channels"))
    assert b"not set up on this server" in page.content and b"manage.py vapid_keys" in page.content
    assert b"data-push-enable" not in page.content
    refused = post_json(client, {"endpoint": "https://push.example.com/x", "keys": {}})
    assert refused.status_code == 409 and not PushSubscription.objects.exists()


def test_the_vapid_keys_command_prints_a_pair_that_signs(capsys, settings):
    call_command("vapid_keys")
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    public, private = lines["VAPID_PUBLIC_KEY"], lines["VAPID_PRIVATE_KEY"]
    assert len(unb64url(public)) == 65 and unb64url(public)[0] == 4
    signer = push.vapid_key(private)
    header = signer.sign({"sub": "mailto:a@example.com", "aud": "https://push.example.com"})
    assert header["Authorization"].endswith(f"k={public}")


# --- the installable app ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_manifest_describes_an_installable_inbox(client):
    response = client.get(reverse("manifest"))
    assert response["Content-Type"] == "application/manifest+json"
    manifest = response.json()
    assert manifest["start_url"] == "/inbox/" and manifest["display"] == "standalone"
    assert {(i["sizes"], i["purpose"]) for i in manifest["icons"]} == {
        ("192x192", "any"),
        ("512x512", "any"),
        ("512x512", "maskable"),
    }


@pytest.mark.django_db
def test_the_service_worker_is_served_from_the_root_uncached(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "no-cache" in response["Cache-Control"]
    code = response.content.decode()
    assert 'const OFFLINE_URL = "/offline/";' in code
    shell = json.loads(code.split("const SHELL_URLS = ", 1)[1].split(";\n", 1)[0])
    assert "/static/css/app.css" in shell and "/offline/" in shell
    assert not [url for url in shell if url.startswith(("/inbox", "/api", "/me"))]


def test_the_offline_page_is_the_same_for_everyone(client, alice, agent, refunds):
    request = submit(agent, refunds, title="Secret refund for Initech")
    anonymous = client.get(reverse("offline"))
    client.force_login(alice)
    logged_in = client.get(reverse("offline"))
    assert anonymous.status_code == logged_in.status_code == 200
    assert b"You are offline" in anonymous.content
    for page in (anonymous, logged_in):
        assert b"alice" not in page.content and b"csrfmiddlewaretoken" not in page.content
        assert request.title.encode() not in page.content


def test_every_page_links_the_manifest_and_the_worker(client, alice):
    client.force_login(alice)
    page = client.get(reverse("my_channels")).content.decode()
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert 'data-service-worker="/sw.js"' in page and 'name="theme-color"' in page


def test_make_run_gets_one_development_pair_for_all_its_processes(tmp_path):
    path = tmp_path / "var" / "vapid-dev.json"
    first = development_keys(path)
    assert development_keys(path) == first  # the worker reads the web process's pair
    assert push.vapid_key(first[1]).public_key is not None
    assert len(unb64url(first[0])) == 65
