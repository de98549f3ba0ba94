"""People's input: every form and every filter or export link on the product's pages refuses
text the database cannot store with a 422 and a message on the page, writing nothing; the
Modify form refuses JSON the agent API would refuse, with its message in the dialog."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from reviews import sampling
from reviews.models import PeriodicReviewItem, SecondReview
from reviews.services.decisions import decide_request
from reviews.services.guidelines import add_guideline
from reviews.services.submission import submit_request
from reviews.views.audit import FILTERS as AUDIT_FILTERS

from .bad_input import BAD_JSON_VALUES, NUL_TEXT, row_counts
from .conftest import ROUTINE
from .test_inbox_views import HX, submit

pytestmark = pytest.mark.django_db

# Values a filter might trip over besides NUL; a filter may accept them, never answer 5xx.
ODD_FILTER_VALUES = [
    "9" * 25,
    "\u00b2",
    "#\u00b3",
    "-1",
    "1e400",
    "NaN",
    "x" * 5000,
    "%00",
    "\ufffd",
    "' OR 1=1 --",
]


@dataclass
class Form:
    page: str
    method: str
    action: str
    htmx: bool
    fields: list[tuple[str, str]] = field(default_factory=list)


class FormReader(HTMLParser):
    """The forms of a page and the links with a query string (filters, exports)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.page, self.forms, self.links = page, [], []
        self.form: Form | None = None
        self.textarea: str | None = None
        self.select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            action = a.get("action") or a.get("hx-post") or a.get("hx-get") or self.page
            method = "post" if "hx-post" in a else (a.get("method") or "get").lower()
            self.form = Form(self.page, method, action, "hx-post" in a or "hx-get" in a)
            self.forms.append(self.form)
        elif tag == "a" and "?" in a.get("href", "") and a["href"].startswith("/"):
            self.links.append(a["href"])
        elif self.form is None or "disabled" in a:
            return
        elif tag == "option" and self.select:
            # The first option, unless a later one is selected.
            if "selected" in a or self.select not in dict(self.form.fields):
                self.set(self.select, a.get("value", ""))
        elif not a.get("name"):
            return
        elif tag == "input" and a.get("type") not in ("submit", "button", "checkbox", "radio"):
            self.form.fields.append((a["name"], a.get("value", "")))
        elif tag == "input" and "checked" in a:
            self.form.fields.append((a["name"], a.get("value", "on")))
        elif tag == "button" and a.get("value"):
            self.form.fields.append((a["name"], a["value"]))
        elif tag == "textarea":
            self.textarea = a["name"]
            self.set(a["name"], "")
        elif tag == "select":
            self.select = a["name"]

    def set(self, name: str, value: str) -> None:
        assert self.form is not None
        self.form.fields = [(n, v) for n, v in self.form.fields if n != name]
        self.form.fields.append((name, value))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.form = None
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None

    def handle_data(self, data: str) -> None:
        if self.textarea and self.form:
            self.set(self.textarea, dict(self.form.fields)[self.textarea] + data)


def read_page(client, url: str) -> FormReader:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    reader = FormReader(url)
    reader.feed(response.content.decode())
    return reader


@pytest.fixture
def world(agent, refunds, alice, carol, admin_user, manager):
    """A pending request, a decided one with a blind second review for alice, a periodic-review
    batch, a guideline: so that every page shows its forms."""
    pending = submit(agent, refunds, title="Refund 120 EUR to Globex")
    submit(agent, refunds, title="Refund 130 EUR to Initech")  # a group of two
    refunds.second_review_rate = 1.0
    refunds.sample_rate = 1.0
    refunds.save()
    decided = submit(agent, refunds, title="Refund decided by carol")
    past = timezone.now() - timedelta(minutes=5)
    decide_request(decided.pk, by=carol, outcome="approved", now=past)
    second = SecondReview.objects.get(request=decided)
    submit_request(agent, category=refunds, title="Auto", confidence=0.95, attributes=ROUTINE)
    sampling.sample()
    periodic = PeriodicReviewItem.objects.first()
    add_guideline(decided.pk, by=admin_user, text="Refunds over 100 need a photo.")
    return {"pending": pending, "decided": decided, "second": second, "periodic": periodic}


def pages_by_role(world: dict[str, Any], agent, refunds, support_queue, alice) -> dict[str, list]:
    pk, batch = world["pending"].pk, world["periodic"].batch_id
    return {
        "alice": [
            reverse("inbox"),
            reverse("inbox_item", args=[pk]),
            reverse("inbox_group", args=[world["pending"].group_key]),
            reverse("inbox_second", args=[world["second"].pk]),
            reverse("inbox_periodic_review_batch", args=[batch]),
            reverse("periodic_reviews"),
            reverse("periodic_review_batch", args=[batch]),
            reverse("guideline_new", args=[pk]),
            reverse("away"),
        ],
        "ada": [
            reverse("policies"),
            reverse("policy_edit", args=[refunds.slug]),
            reverse("policy_versions", args=[refunds.slug]),
            reverse("queues"),
            reverse("queue_edit", args=[support_queue.pk]),
            reverse("agents"),
            reverse("agent_detail", args=[agent.pk]),
            reverse("audit"),
            reverse("audit_request", args=[pk]),
            reverse("status"),
        ],
        "max": [
            reverse("metrics"),
            reverse("metrics_calibration"),
            reverse("metrics_advice"),
            reverse("metrics_patterns"),
            reverse("metrics_reviewers"),
            reverse("metrics_autonomy"),
            reverse("metrics_agreement"),
        ],
    }


def send(client, method: str, url: str, data: list[tuple[str, str]], htmx: bool, page: str = ""):
    extra = {**HX, "HTTP_HX_CURRENT_URL": "http://testserver" + page} if htmx else {}
    if method == "get":
        path = urlsplit(url).path
        return client.get(f"{path}?{urlencode(data)}", **extra)
    return client.post(url, urlencode(data), "application/x-www-form-urlencoded", **extra)


def assert_refused_on_the_page(response, before: dict[str, int], what: str) -> None:
    assert response.status_code == 422, (what, response.status_code)
    assert b"NUL characters" in response.content, what
    assert b"Nothing was saved" in response.content, what
    assert row_counts() == before, f"{what} wrote something"


def test_every_form_and_filter_refuses_nul_characters_and_writes_nothing(
    client, world, agent, refunds, support_queue, alice
):
    tried = set()
    for username, urls in pages_by_role(world, agent, refunds, support_queue, alice).items():
        client.force_login(User.objects.get(username=username))
        for url in urls:
            reader = read_page(client, url)
            targets = [(f.method, f.action, f.fields, f.htmx) for f in reader.forms]
            targets += [
                ("get", link, parse_qsl(urlsplit(link).query), False) for link in reader.links
            ]
            for method, action, fields, htmx in targets:
                if action.startswith("/logout") or (method, action) in tried:
                    continue
                tried.add((method, action))
                names = [name for name, _ in fields if name != "csrfmiddlewaretoken"]
                before = row_counts()
                for name in [*dict.fromkeys(names), NUL_TEXT]:
                    data = [(n, NUL_TEXT if n == name else v) for n, v in fields]
                    if name == NUL_TEXT:  # a field name with NUL
                        data.append((NUL_TEXT, "x"))
                    for as_htmx in {False, htmx}:
                        what = f"{name!r} of {method.upper()} {action} (from {url})"
                        response = send(client, method, action, data, as_htmx, url)
                        assert_refused_on_the_page(response, before, what)
                        if as_htmx:  # where the page shows it: the inbox's toast, else its alert
                            where = "#toast" if url.startswith("/inbox/") else "#page-alert"
                            assert response["HX-Retarget"] == where, what
    posted = {action for method, action in tried if method == "post"}
    # The forms people write with: decide, reply, batch, guideline, periodic review, policy, etc.
    for name, args in [
        ("inbox_decide", [world["pending"].pk]),
        ("inbox_reply", [world["pending"].pk]),
        ("inbox_batch", []),
        ("inbox_second_decide", [world["second"].pk]),
        ("periodic_review_verdict", [world["periodic"].pk]),
        ("guideline_new", [world["pending"].pk]),
        ("policy_edit", [refunds.slug]),
        ("queue_edit", [support_queue.pk]),
        ("agent_token_issue", [agent.pk]),
        ("away", []),
    ]:
        assert reverse(name, args=args) in posted, name
    gets = {urlsplit(action).path for method, action in tried if method == "get"}
    assert {reverse("inbox"), reverse("audit"), reverse("audit_export")} <= gets
    assert reverse("metrics_export") in gets


def test_filters_and_exports_never_fail_on_odd_values(client, world, alice, admin_user, manager):
    checks = [
        (alice, reverse("inbox"), ["queue", "category", "who", "q", "tab"]),
        (alice, reverse("inbox_poll"), ["q", "current", "tab"]),
        (alice, reverse("inbox_item", args=[world["pending"].pk]), ["q", "category"]),
        (admin_user, reverse("audit"), [*AUDIT_FILTERS, "before"]),
        (admin_user, reverse("audit_export"), [*AUDIT_FILTERS, "format"]),
        (manager, reverse("metrics"), ["days", "from", "to", "category", "agent"]),
        (manager, reverse("metrics_export"), ["days", "from", "category", "format"]),
    ]
    for user, url, names in checks:
        client.force_login(user)
        for name in names:
            for value in ODD_FILTER_VALUES:
                response = client.get(url, {name: value})
                assert response.status_code < 500, (url, name, value, response.status_code)


def test_the_decide_and_batch_forms_refuse_odd_ids_and_versions(client, world, alice):
    client.force_login(alice)
    pk = world["pending"].pk
    before = row_counts()
    for value in ODD_FILTER_VALUES:
        for url, data in [
            (reverse("inbox_decide", args=[pk]), {"outcome": "approve", "version": value}),
            (reverse("inbox_batch"), {"outcome": "approve", "ids": value}),
            (reverse("inbox_batch"), {"outcome": "approve", "ids": f"{pk}:{value}"}),
        ]:
            response = client.post(url, data, **HX)
            assert 400 <= response.status_code < 500, (url, data, response.status_code)
            assert row_counts() == before, (url, data)


MODIFY_CORPUS = {
    **{
        name: '{"action": "refund", "amount": ' + raw + "}" for name, raw in BAD_JSON_VALUES.items()
    },
    "990 levels deep, bare": "[" * 990 + "]" * 990,
    "a list": "[1, 2]",
    "not JSON": "{amount: 1}",
}


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_the_modify_form_refuses_bad_json_with_a_message_in_the_dialog(client, world, alice, htmx):
    pending = world["pending"]
    client.force_login(alice)
    url = reverse("inbox_decide", args=[pending.pk])
    before = row_counts()
    for name, text in MODIFY_CORPUS.items():
        data = {"outcome": "modify", "version": pending.proposal_version, "final_action": text}
        response = client.post(url, data, **(HX if htmx else {}))
        assert response.status_code == 422, (name, response.status_code)
        content = response.content.decode()
        assert 'id="modify-dialog" aria-labelledby="modify-title" data-open' in content, name
        assert 'class="field-error" id="modify-error" role="alert"></p>' not in content, name
        assert row_counts() == before, name
    pending.refresh_from_db()
    assert pending.is_pending


def test_the_modify_messages_say_what_is_wrong(client, world, alice):
    client.force_login(alice)
    url = reverse("inbox_decide", args=[world["pending"].pk])

    def error(text: str) -> str:
        data = {"outcome": "modify", "version": 1, "final_action": text}
        return client.post(url, data, **HX).content.decode()

    assert "numbers must be finite" in error('{"amount": 1e400}')
    assert "numbers must be finite" in error('{"amount": NaN}')
    assert "NUL characters" in error('{"note": "a\\u0000b"}')
    assert "lone surrogates" in error('{"\\ud800": 1}')
    assert "more than 32 levels" in error('{"a": ' + "[" * 990 + "]" * 990 + "}")


def test_a_second_opinion_refuses_the_same_json(client, world, alice):
    client.force_login(alice)
    second = world["second"]
    before = row_counts()
    url = reverse("inbox_second_decide", args=[second.pk])
    for name, text in MODIFY_CORPUS.items():
        response = client.post(url, {"outcome": "modify", "final_action": text}, **HX)
        assert response.status_code == 422, name
        assert row_counts() == before, name


def test_valid_json_still_modifies(client, world, alice):
    client.force_login(alice)
    final = {"action": "refund", "amount": 60, "currency": "EUR", "lines": [[1, {"a": None}]]}
    response = client.post(
        reverse("inbox_decide", args=[world["pending"].pk]),
        {"outcome": "modify", "version": 1, "final_action": json.dumps(final)},
        **HX,
    )
    assert response.status_code == 200
    world["pending"].refresh_from_db()
    assert world["pending"].decision.final_action == final
