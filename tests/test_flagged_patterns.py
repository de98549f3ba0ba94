"""What periodic review flags: incorrect verdicts grouped into patterns where errors
concentrate, offered as an escalation rule (the editor and its preview) and a guideline, and
shown as adopted once a rule or a guideline covers them."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from reviews import rules as engine
from reviews.insights.flagged import flagged_patterns, parse_pattern, pattern_key, roundest
from reviews.models import Category, EscalationRule, Guideline, PolicyVersion

from .flagged_support import LARGE_REFUND, amount_world, reviewed
from .policies_helpers import editor_data, make_request, rules_of

pytestmark = pytest.mark.django_db


def found(category_id=None):
    return [
        (p.rule.field, p.rule.operator, p.rule.value, p.incorrect_in, p.correct_in,
         p.incorrect_out, p.correct_out)
        for p in flagged_patterns(category_id)
    ]  # fmt: skip


def rule_link(html: str) -> str:
    start = html.index('href="/policies/refunds/edit/?') + len('href="')
    return html[start : html.index('"', start)].replace("&amp;", "&")


def test_it_finds_a_round_threshold_where_incorrect_verdicts_concentrate(agent, refunds, carol):
    amount_world(agent, refunds, carol)
    assert found() == [("amount", "gt", 700, 4, 0, 0, 6)]
    (pattern,) = flagged_patterns()
    assert pattern.label == "amount exceeds 700"
    assert pattern.corrections == [(LARGE_REFUND, 3), ("Offer store credit instead", 1)]
    assert len(pattern.flagged) == 4
    assert pattern.caught is None and pattern.guideline is None


def test_it_finds_text_values_and_flags_the_incorrect_verdicts_share(agent, refunds, carol):
    for amount in (100, 300, 500):
        reviewed(agent, refunds, carol, "incorrect", amount=amount, customer_tier="gold",
                 policy_conflict=True)  # fmt: skip
    for amount in (50, 200, 400, 600, 150, 350):
        reviewed(agent, refunds, carol, "correct", amount=amount, policy_conflict=False)
    assert sorted(found()) == [
        ("customer_tier", "eq", "gold", 3, 0, 0, 6),
        ("policy_conflict", "is_true", None, 3, 0, 0, 6),
    ]


def test_there_is_no_pattern_where_errors_do_not_concentrate(agent, refunds, carol):
    # Incorrect verdicts spread across the amounts, as many correct ones beside each.
    for amount in (100, 300, 500, 700):
        reviewed(agent, refunds, carol, "incorrect", amount=amount)
    for amount in (150, 200, 350, 550, 750):
        reviewed(agent, refunds, carol, "correct", amount=amount)
    assert found() == []


def test_two_incorrect_verdicts_are_not_enough(agent, refunds, carol):
    for amount in (900, 1200):
        reviewed(agent, refunds, carol, "incorrect", amount=amount)
    for amount in (50, 90, 120):
        reviewed(agent, refunds, carol, "correct", amount=amount)
    assert found() == []


def test_verdicts_older_than_ninety_days_are_left_out(agent, refunds, carol):
    for amount in (720, 850, 1300):
        reviewed(agent, refunds, carol, "incorrect", amount=amount, age=timedelta(days=91))
    assert found() == []


def test_the_roundest_threshold_stays_between_the_verdicts():
    assert roundest(650, 720, closed_low=True) == 700
    assert roundest(713.42, 713.9, closed_low=True) == 713.5
    assert roundest(0.55, 0.68, closed_low=False) == 0.6
    assert roundest(700, 1000, closed_low=True) == 700
    assert roundest(0.62, 0.7, closed_low=False) == 0.7


def test_a_pattern_reads_back_as_its_rule():
    for rule in (
        engine.Rule("amount", "gt", 700),
        engine.Rule("policy_conflict", "is_true"),
        engine.Rule("customer_tier", "eq", "gold"),
        engine.Rule("confidence", "lt", 0.6),
    ):
        assert parse_pattern(pattern_key(rule)) == rule
    for bad in ("amount", "amount gt lots", "amount banana 3", "confidence lt 7"):
        with pytest.raises(ValueError):
            parse_pattern(bad)


def test_the_rule_link_opens_the_editor_with_the_rule_and_the_preview_split(
    client, admin_user, agent, refunds, carol
):
    flagged = amount_world(agent, refunds, carol)
    # Not sampled: a large refund that ran without a person, never reviewed.
    make_request(agent, refunds, attributes={"amount": 990, "customer_tier": "standard"})
    # Already seen by people (a key account): what they did.
    key_account = {"amount": 2500, "customer_tier": "enterprise"}
    make_request(agent, refunds, attributes=key_account, status="approved", outcome="approved",
                 by=alice_of(refunds), verdict="escalate")  # fmt: skip
    make_request(agent, refunds, attributes=key_account, status="modified", outcome="modified",
                 by=alice_of(refunds), verdict="escalate")  # fmt: skip
    # Below the threshold: neither side counts it.
    small = {"amount": 100, "customer_tier": "enterprise"}
    make_request(agent, refunds, attributes=small, status="rejected", outcome="rejected",
                 by=alice_of(refunds), verdict="escalate")  # fmt: skip
    client.force_login(admin_user)
    page = client.get(reverse("metrics_autonomy")).content.decode()
    link = rule_link(page)
    query = parse_qs(urlsplit(link).query)
    assert (query["field"], query["operator"], query["value"], query["days"]) == (
        ["amount"],
        ["gt"],
        ["700"],
        ["90"],
    )
    assert "mode" not in query  # refunds runs in rules mode already

    response = client.get(link)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Pre-filled from a link: a new rule on amount" in html
    (catch,) = response.context["preview"].catches
    assert catch.summary == "amount exceeds 700"
    assert (catch.unattended, catch.verdicts) == (5, {"marked incorrect": 4, "not sampled": 1})
    assert (catch.escalated, catch.outcomes) == (2, {"approved unchanged": 1, "modified": 1})
    assert 'data-preview="unattended">5<' in html and 'data-preview="escalated">2<' in html
    assert 'data-verdict="marked incorrect">4 marked incorrect<' in html
    assert response.context["preview"].days == 90
    assert f"#{flagged[0].pk}" in page  # the flagged requests are listed on the scorecard


def alice_of(category: Category):
    return category.queue.members.get(username="alice")


def test_an_autonomous_category_is_offered_rules_mode_with_the_rule(
    client, admin_user, agent, refunds, carol
):
    amount_world(agent, refunds, carol)
    Category.objects.filter(pk=refunds.pk).update(mode="autonomous")
    client.force_login(admin_user)
    link = rule_link(client.get(reverse("metrics_autonomy")).content.decode())
    assert parse_qs(urlsplit(link).query)["mode"] == ["rules"]
    response = client.get(link)
    html = response.content.decode()
    assert "mode autonomous → rules" in html
    assert "an autonomous category sends nothing to a person, whatever its rules" in html
    assert response.context["form"]["mode"].value() == "rules"
    preview = response.context["preview"]
    # With rules mode every large refund now goes to a person.
    assert preview.to_human == 4


def adoption(page: str, key: str = "amount gt 700") -> str:
    """The adoption lines of one pattern on a metrics page, as HTML."""
    start = page.index(f'data-pattern="{key}"')
    start = page.index("flagged-adoption", start)
    return page[start : page.index("</ul>", start)]


def test_saving_the_rule_through_the_editor_shows_the_pattern_caught(
    client, admin_user, agent, refunds, carol
):
    amount_world(agent, refunds, carol)
    client.force_login(admin_user)
    # The admin moves the threshold to 710: it still catches every flagged refund (720 up).
    rules = [*rules_of(refunds), {"field": "amount", "operator": "gt", "value": "710"}]
    data = editor_data(refunds, rules=rules, action="save", note="Periodic review flags these")
    assert client.post(reverse("policy_edit", args=[refunds.slug]), data).status_code == 302
    version = PolicyVersion.objects.filter(category=refunds).order_by("-number").first()
    page = client.get(reverse("metrics_autonomy")).content.decode()
    assert "Caught by rule <strong>amount exceeds 710</strong>" in page
    versions_url = reverse("policy_versions", args=[refunds.slug])
    assert f'href="{versions_url}#v{version.number}">version {version.number}</a>' in page
    assert 'href="/policies/refunds/edit/?' not in page  # adopted: no second offer


def five_flagged(agent, refunds, carol) -> None:
    """Five incorrect verdicts on refunds above 700 (two of them under 1,000), six correct ones
    at 650 and below."""
    for amount in (760, 880, 1200, 1500, 4000):
        reviewed(agent, refunds, carol, "incorrect", amount=amount, correction=LARGE_REFUND)
    for amount in (50, 90, 120, 300, 410, 650):
        reviewed(agent, refunds, carol, "correct", amount=amount)


def test_a_rule_that_leaves_flagged_requests_without_a_person_is_a_partial_cover(
    client, admin_user, agent, refunds, carol
):
    five_flagged(agent, refunds, carol)
    client.force_login(admin_user)
    # The admin saves the pre-filled rule with 1,000 instead of 700: 760 and 880 still run.
    rules = [*rules_of(refunds), {"field": "amount", "operator": "gt", "value": "1000"}]
    data = editor_data(refunds, rules=rules, action="save", note="Only the large ones")
    assert client.post(reverse("policy_edit", args=[refunds.slug]), data).status_code == 302
    (pattern,) = flagged_patterns()
    assert pattern.caught is None
    assert (pattern.cover.covered, pattern.cover.total, pattern.cover.missed) == (3, 5, 2)
    for name in ("metrics_autonomy", "metrics_patterns"):
        lines = adoption(client.get(reverse(name)).content.decode())
        assert "Caught by" not in lines
        assert "Rule <strong>amount exceeds 1,000</strong>" in lines
        assert "covers 3 of 5 flagged; 2 would still run without a person." in lines
        # Not adopted: both offers stay.
        assert 'href="/policies/refunds/edit/?' in lines and "Make it a guideline" in lines


def test_rules_that_cover_the_pattern_together_catch_it(client, admin_user, agent, refunds, carol):
    five_flagged(agent, refunds, carol)
    EscalationRule.objects.create(category=refunds, field="amount", operator="gt", value=1000)
    EscalationRule.objects.create(category=None, field="amount", operator="in", value=[760, 880])
    client.force_login(admin_user)
    lines = adoption(client.get(reverse("metrics_patterns")).content.decode())
    assert lines.startswith('flagged-adoption">\n    <li data-adoption="rule">Caught by rules ')
    assert "<strong>amount exceeds 1,000</strong>" in lines and " and <strong>" in lines
    assert "<strong>amount is one of 760, 880</strong>" in lines
    assert "(a rule for every category)" in lines and "would still run" not in lines
    assert 'href="/policies/refunds/edit/?' not in lines


def test_a_rule_that_catches_too_little_is_not_adoption(client, admin_user, agent, refunds, carol):
    amount_world(agent, refunds, carol)
    EscalationRule.objects.create(category=refunds, field="amount", operator="gt", value=1000)
    client.force_login(admin_user)
    page = client.get(reverse("metrics_autonomy")).content.decode()
    assert "Caught by rule" not in page and 'href="/policies/refunds/edit/?' in page
    assert "covers 2 of 4 flagged; 2 would still run without a person" in page


def test_a_guideline_whose_pattern_misses_flagged_requests_is_not_adoption(
    client, admin_user, agent, refunds, carol
):
    flagged = amount_world(agent, refunds, carol)
    Guideline.objects.create(category=refunds, text="Large refunds: ask for photos",
                             source_request=flagged[0], pattern="amount gt 1000")  # fmt: skip
    client.force_login(admin_user)
    lines = adoption(client.get(reverse("metrics_patterns")).content.decode())
    assert "for <strong>amount exceeds 1,000</strong> covers 2 of 4 flagged" in lines
    assert "Make it a guideline" in lines
    Guideline.objects.update(pattern="amount gt 700")
    lines = adoption(client.get(reverse("metrics_patterns")).content.decode())
    assert "Guideline written" in lines and "covers" not in lines
    assert "Make it a guideline" not in lines


def test_a_global_rule_catches_it_too(client, admin_user, agent, refunds, carol):
    amount_world(agent, refunds, carol)
    EscalationRule.objects.create(category=None, field="amount", operator="gte", value=700)
    client.force_login(admin_user)
    page = client.get(reverse("metrics_patterns")).content.decode()
    assert "Caught by rule <strong>amount is at least 700</strong> (a rule for every category)" in (
        page
    )


def guideline_link(page: str) -> str:
    start = page.index('href="/requests/') + len('href="')
    return page[start : page.index('"', start)].replace("&amp;", "&")


def test_writing_the_guideline_records_its_pattern_and_shows_it(
    client, admin_user, agent, refunds, carol
):
    flagged = amount_world(agent, refunds, carol)
    client.force_login(admin_user)
    page = client.get(reverse("metrics_patterns")).content.decode()
    link = guideline_link(page)
    assert link.startswith(reverse("guideline_new", args=[flagged[-1].pk]))
    query = parse_qs(urlsplit(link).query)
    assert query["pattern"] == ["amount gt 700"]
    # The pattern, then each correction as its own sentence.
    assert query["text"] == [
        f"When amount exceeds 700:\n{LARGE_REFUND}.\nOffer store credit instead."
    ]
    form = client.get(link).content.decode()
    assert 'name="pattern" value="amount gt 700"' in form
    assert "flags: <strong>amount exceeds 700</strong>" in form and "amount gt 700</" not in form
    # Its source says why it is here, not only that the system approved it.
    assert f"{flagged[-1].title} · marked incorrect by periodic review on" in form
    cancel = f'<a class="btn btn-ghost" href="{reverse("metrics_patterns")}">Cancel'
    assert cancel in form
    response = client.post(
        urlsplit(link).path,
        {"text": query["text"][0], "pattern": "amount gt 700", "back": "metrics_patterns"},
    )
    assert response.status_code == 302 and response.url == reverse("metrics_patterns")
    guideline = Guideline.objects.get()
    assert (guideline.pattern, guideline.category) == ("amount gt 700", refunds)
    page = client.get(reverse("metrics_patterns")).content.decode()
    assert "Guideline written" in page and "Make it a guideline" not in page


def test_the_guideline_form_leads_back_to_the_scorecard_and_nowhere_else(
    client, admin_user, agent, refunds, carol
):
    amount_world(agent, refunds, carol)
    client.force_login(admin_user)
    link = guideline_link(client.get(reverse("metrics_autonomy")).content.decode())
    assert parse_qs(urlsplit(link).query)["back"] == ["metrics_autonomy"]
    form = client.get(link).content.decode()
    assert f'href="{reverse("metrics_autonomy")}">Cancel' in form
    for bad in ("https://example.com/", "logout", "/metrics/patterns/"):
        form = client.get(urlsplit(link).path, {"back": bad}).content.decode()
        assert ">Cancel<" not in form and "example.com" not in form


def test_the_drafted_guideline_says_each_correction_once(agent, refunds, carol):
    said_three_ways = [(720, "ask for photos"), (850, "Ask for photos."), (990, "ask for photos")]
    for amount, said in said_three_ways:
        reviewed(agent, refunds, carol, "incorrect", amount=amount, correction=said)
    for amount in (50, 90, 120, 300):
        reviewed(agent, refunds, carol, "correct", amount=amount)
    (pattern,) = flagged_patterns()
    assert pattern.guideline_draft.splitlines()[1:] == ["Ask for photos."]


def test_a_bad_pattern_is_refused_and_writes_nothing(client, admin_user, agent, refunds, carol):
    (request, *_) = amount_world(agent, refunds, carol)
    client.force_login(admin_user)
    url = reverse("guideline_new", args=[request.pk])
    for bad in ("amount", "amount banana 3", "amount gt lots", "x" * 300):
        response = client.post(url, {"text": "Ask a person", "pattern": bad})
        assert response.status_code == 400, bad
        assert "is not a pattern" in response.content.decode() or "too long" in (
            response.content.decode()
        )
    response = client.get(url, {"text": "Ask", "pattern": "amount banana 3"})
    assert response.status_code == 400
    assert "will not record a pattern" in response.content.decode()
    assert not Guideline.objects.exists()


def test_bad_editor_parameters_get_a_message_and_write_nothing(client, admin_user, refunds):
    client.force_login(admin_user)
    url = reverse("policy_edit", args=[refunds.slug])
    versions = PolicyVersion.objects.count()
    for params, message in [
        ({"days": "abc"}, "is not a preview window"),
        ({"days": "500"}, "is not a preview window"),
        ({"days": "0"}, "is not a preview window"),
        ({"mode": "banana"}, "is not a mode"),
    ]:
        response = client.get(url, {"field": "amount", "operator": "gt", "value": "700", **params})
        assert response.status_code == 200
        html = response.content.decode()
        assert message in html, params
        assert response.context["preview"].days == 7
        assert response.context["form"]["mode"].value() == "rules"
    assert PolicyVersion.objects.count() == versions
    assert Category.objects.get(pk=refunds.pk).version == refunds.version


def test_a_reviewer_gets_403_and_a_manager_sees_no_adopt_links(
    client, alice, manager, agent, refunds, carol
):
    amount_world(agent, refunds, carol)
    client.force_login(alice)
    assert client.get(reverse("metrics_autonomy")).status_code == 403
    assert client.get(reverse("metrics_patterns")).status_code == 403
    client.force_login(manager)
    for name in ("metrics_autonomy", "metrics_patterns"):
        page = client.get(reverse(name)).content.decode()
        assert "amount exceeds 700" in page
        assert "/policies/refunds/" not in page and "/guideline/" not in page
        assert "an admin can make it an escalation rule" in page
        assert "a reviewer of the category's queue or an admin can write one" in page


def test_agent_text_and_corrections_are_escaped(client, admin_user, agent, refunds, carol):
    for amount in (720, 850, 1300):
        reviewed(agent, refunds, carol, "incorrect", amount=amount,
                 correction="<script>alert(1)</script>", title="<img src=x onerror=2>")  # fmt: skip
    for amount in (50, 90, 120):
        reviewed(agent, refunds, carol, "correct", amount=amount)
    client.force_login(admin_user)
    for name in ("metrics_autonomy", "metrics_patterns"):
        page = client.get(reverse(name)).content.decode()
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
        assert "<img src=x" not in page and "&lt;img src=x" in page


def test_the_pages_stay_within_a_few_queries(
    client, admin_user, agent, refunds, carol, django_assert_max_num_queries
):
    amount_world(agent, refunds, carol)
    client.force_login(admin_user)
    client.get(reverse("metrics_patterns"))
    with django_assert_max_num_queries(40):
        client.get(reverse("metrics_patterns"))
