"""The reviewer inbox: a list of pending work and one item at a time, decided by
keyboard, tap or batch, with the thread to the agent and a few seconds to undo.

Every view reads through reviews.access and writes through reviews.services. htmx requests
get the fragment they target; plain requests get the whole page (or a redirect after a POST).
"""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url, trigger_client_event

from .. import precedents, validation
from .. import rules as engine
from ..access import (
    REVIEWERS,
    categories_for_reviewer,
    get_request_for_reviewer,
    may_reverse,
    requests_for_reviewer,
    reviewer_queue_ids,
    reviewer_queues,
    role_required,
)
from ..insights.calibration import calibration_hint
from ..insights.patterns import option_change
from ..models import (
    DEFAULT_VERBS,
    Decision,
    FourEyesStep,
    Message,
    Reversal,
    ReviewRequest,
    Verb,
)
from ..proposals import action_delta, changed_kind, changes_since, display_value, parse_version
from ..services import four_eyes, known_answers
from ..services.conversation import post_message
from ..services.deadline_plan import plan_for
from ..services.decisions import decide_request, undo_decision
from ..services.errors import (
    AlreadyDecided,
    DecisionNotAllowed,
    StaleProposal,
    TransitionError,
    settled_by,
)
from ..services.reversals import why_not_reversible
from ..services.sightings import record_first_view, record_first_views, record_sightings, seen_by
from ..templatetags.inbox_tags import json_preview, json_text
from ..worklist import (
    GROUP_TABLE_SIZE,
    INBOX_ORDER,
    LIST_DEFERRED,
    LIST_SIZE,
    Filters,
    Hidden,
    bundle_place,
    conversation_state,
    fired_summary,
    four_eyes_taken,
    group_summaries,
    inbox_rows,
    mark_rows,
    next_item,
    pending,
    pending_counts,
    with_turn_marks,
    work_counts,
    work_rows,
)

Status = ReviewRequest.Status
Outcome = Decision.Outcome

PRECEDENTS_SHOWN = 5
DATA_POINTS_SHOWN = 40  # key data shown on the item; the rest is in its raw JSON
REJECT_REASONS = [
    "Outside policy",
    "Needs more evidence",
    "Wrong amount",
    "Duplicate request",
    "Too risky to automate",
    "Customer already compensated",
]
# A question first: it is what the reply box is mostly for, and it hands the request to the
# agent; a plain reply asks nothing and leaves it with the reviewer.
REPLY_KINDS = {
    Message.Kind.QUESTION: "Question",
    Message.Kind.INSTRUCTIONS: "New instructions",
    Message.Kind.COMMENT: "Reply",
}
OUTCOMES = {"approve": Outcome.APPROVED, "reject": Outcome.REJECTED, "modify": Outcome.MODIFIED}


# --- reading the inbox ---------------------------------------------------------------------


def list_context(user: Any, filters: Filters, *, shown: bool = True) -> dict[str, Any]:
    """The list pane. `shown`: these rows are being put on the reviewer's screen (a GET), so
    they are recorded as seen; a refused POST that re-renders the page records nothing."""
    queues = list(reviewer_queues(user).order_by("name"))
    queue_ids = [queue.pk for queue in queues]
    qs = pending(user, queue_ids, filters)
    work = work_counts(user, queue_ids)
    if filters.tab:
        work.update(work_rows(user, queue_ids, filters))
    rows = []
    if not filters.tab:
        listed = with_turn_marks(qs.defer(*LIST_DEFERRED).annotate(seen=seen_by(user)))
        rows = inbox_rows(user, listed, LIST_SIZE)
        mark_rows(rows)
        four_eyes.stages_of(rows)
        if shown:  # a batch of these rows is timed from their first sight
            record_sightings([r.pk for r in rows if not r.seen], by=user)
    hidden = Hidden.of(user, queue_ids)
    counts = pending_counts(user, queue_ids, hidden)
    for queue in queues:
        queue.pending_count = counts.get(queue.pk, {}).get("n", 0)
    total = sum(c["n"] for c in counts.values())
    return {
        "rows": rows,
        # The list shows the reviewer's own turn, then, apart, what waits on the agent.
        "rows_ready": [r for r in rows if r.turn == ReviewRequest.Turn.REVIEWER],
        "rows_waiting": [r for r in rows if r.turn == ReviewRequest.Turn.AGENT],
        "queues": queues,
        "total": total,
        "mine_total": sum(c["mine"] for c in counts.values()),
        "shown_total": total if not filters.active else None,
        "groups": group_summaries(user, queue_ids, filters, qs, hidden) if not filters.tab else [],
        "filters": filters,
        "categories": categories_for_reviewer(user, queue_ids).order_by("name"),
        **work,
        "reject_reasons": REJECT_REASONS,  # the selection's reject dialog
    }


# --- one item -------------------------------------------------------------------------------


def posted_final_action(outcome: str | None, proposed: Any, text: str) -> dict[str, Any] | None:
    """What a decide form asks for beyond its outcome: the edited action when modifying, else
    None. Raises ValidationError for a missing outcome or an edit that does not hold."""
    if outcome is None:
        raise ValidationError("Choose one of the decisions offered.")
    if outcome != Outcome.MODIFIED:
        return None
    return validate_final_action(proposed, text)


def validate_final_action(proposed: Any, text: str) -> dict[str, Any]:
    """The reviewer's edited action: a JSON object whose fields keep their kind."""
    try:
        final = validation.parse_json(text)
    except validation.InvalidInput as exc:
        raise ValidationError(str(exc)) from None
    if not isinstance(final, dict):
        raise ValidationError("The action must be a JSON object: {…}.")
    kind_changed = changed_kind(proposed, final)
    if kind_changed:
        raise ValidationError(kind_changed)
    return final


PRECEDENT_FIELDS = (
    "pk",
    "title",
    "decided_at",
    "proposed_action",
    "recommended_option",
    "decision__chosen_option",
    "decision__final_action",
    "decision__reason",
    "decision__decided_by__username",
)
PRECEDENT_BADGES = {
    precedents.AS_PROPOSED: "ok",
    precedents.MODIFIED: "warn",
    precedents.REJECTED: "bad",
}


def past_alike(
    req: ReviewRequest, user: Any
) -> tuple[precedents.Precedents, list[dict[str, Any]], str]:
    """The precedents the rules were given for this request, the latest few of them the
    reviewer may open (newest first), and what the rules used instead if not those.

    Plain values rather than models: this runs on every item view, next to each decision."""
    found = precedents.for_request(req)
    if not found.n:
        return found, [], precedents.rules_were_given(req, found)
    kinds = dict(found.rows)
    visible = requests_for_reviewer(user).filter(pk__in=found.ids)
    recent = visible.order_by("-decided_at")[:PRECEDENTS_SHOWN]
    shown = []
    for past in recent.values(*PRECEDENT_FIELDS):
        kind = kinds[past["pk"]]
        final_action = past["decision__final_action"]
        chosen, recommended = past["decision__chosen_option"], past["recommended_option"]
        shown.append(
            {
                "pk": past["pk"],
                "title": past["title"],
                "decided_at": past["decided_at"],
                "decided_by": past["decision__decided_by__username"] or "system",
                "reason": past["decision__reason"] or "",
                "badge": PRECEDENT_BADGES[kind],
                "label": kind.capitalize(),
                "option": option_change(recommended, chosen)
                if chosen and recommended and chosen != recommended
                else "",
                "delta": action_delta(past["proposed_action"], final_action)
                if final_action
                else [],
            }
        )
    return found, shown, precedents.rules_were_given(req, found)


def item_context(
    req: ReviewRequest, user: Any, blind: bool = False, **extra: Any
) -> dict[str, Any]:
    """What the item pane shows. `blind` (a second review) leaves out the request's own
    decision and who made it; the rest is exactly what the first reviewer saw."""
    decision = (
        Decision.objects.select_related("decided_by").filter(request=req).first()
        if not req.is_pending and not blind
        else None
    )
    # Those in effect at submission: a second review (blind) sees nothing decided after it.
    found, shown, rules_used = past_alike(req, user)
    # Decided alike since it was submitted: news for whoever decides it now, not for a blind
    # second review of a decision already taken.
    newer = precedents.since(req, found) if req.is_pending and not blind else []
    fired_fields = {f.get("field") for f in req.fired_rules if isinstance(f, dict)}
    attributes = req.attributes or {}
    data_points = [
        {
            "key": key,
            "label": str(key).replace("_", " ").capitalize(),
            "value": display_value(value),
            "fired": key in fired_fields,
        }
        for key, value in itertools.islice(attributes.items(), DATA_POINTS_SHOWN)
    ]
    # The one full copy of the action is the Modify form's text; the read-only view is a
    # preview, collapsed with a link to the raw JSON once it is long.
    action_preview, action_cut = json_preview(req.proposed_action)
    labels = req.option_labels
    options = [
        {"n": n, "key": key, "label": label, "recommended": key == req.recommended_option}
        for n, (key, label) in enumerate(labels.items(), start=1)
        if n <= 9
    ]
    thread = list(req.messages.select_related("author"))
    # What the reviewer is offered: what the request allows. A blind second opinion is a
    # verdict that never reaches the agent, always approve, modify or reject.
    allowed = DEFAULT_VERBS if blind else req.allowed_decisions
    reversal = (
        Reversal.objects.filter(request=req).select_related("reversed_by").first()
        if decision
        else None
    )
    return {
        "req": req,
        "allowed": allowed,
        "options_verb": options_verb(allowed),
        "is_question": not blind and req.is_question,
        "decision": decision,
        "reversal": reversal,
        # Offered once the agent has acted on the decision, to those access.py lets reverse.
        "can_reverse": decision is not None
        and reversal is None
        and why_not_reversible(req) is None
        and may_reverse(user, req.pk),
        "decision_delta": action_delta(req.proposed_action, decision.final_action)
        if decision and decision.final_action
        else [],
        "options": options,
        "recommended_label": labels.get(req.recommended_option, ""),
        "data_points": data_points,
        "data_points_hidden": max(len(attributes) - DATA_POINTS_SHOWN, 0),
        "action_json": json_text(req.proposed_action),
        "action_preview": action_preview,
        "action_cut": action_cut,
        "precedents": found,
        "precedent_tally": [
            {"kind": kind, "n": n, "badge": PRECEDENT_BADGES[kind]} for kind, n in found.tally
        ],
        "precedent_examples": shown,
        "precedents_since": [
            {"kind": kind, "n": n, "badge": PRECEDENT_BADGES[kind]} for kind, n in newer
        ],
        "precedent_rules_used": rules_used,
        "calibration": calibration_hint(req.category_id, req.agent_id, req.confidence),
        "plan": plan_for(req).words if req.is_pending else [],
        "overdue": bool(req.deadline and req.deadline <= timezone.now()),
        "thread": thread,
        "reply_kinds": REPLY_KINDS.items(),
        "reject_reasons": REJECT_REASONS,
        "blind": blind,
        "bundle": bundle_place(user, req),
        "four_eyes": four_eyes.state_for(req, user) if not blind else None,
        **(conversation_state(req, thread) if not blind else {"turn_mark": None}),
        **extra,
    }


def options_verb(allowed: list[str]) -> str:
    """What choosing one of the agent's options does: approve with it; on a request that
    cannot be approved but can be answered (a question with choices), answer with its label;
    else nothing (the options are only read)."""
    for verb in (Verb.APPROVE, Verb.RESPOND):
        if verb in allowed:
            return verb.value
    return ""


def render_item(
    request: HttpRequest, req: ReviewRequest, status: int = 200, **extra: Any
) -> HttpResponse:
    context = item_context(req, request.user, **extra)
    return render_pane(request, "inbox/_item.html", context, status=status)


def render_pane(
    request: HttpRequest,
    partial: str,
    context: dict[str, Any],
    pane: str = "",
    tab: str = "",
    status: int = 200,
) -> HttpResponse:
    """One pane of the inbox: the partial alone for htmx, else the whole page around it, its
    list on `tab` (the work tab the pane belongs to)."""
    if request.htmx:
        return render(request, partial, context, status=status)
    filters = Filters.from_data({**request.GET.dict(), "tab": tab} if tab else request.GET)
    listed = list_context(request.user, filters, shown=request.method == "GET")
    page = {**listed, **context, "nav_active": "inbox", "pane": pane}
    return render(request, "inbox/page.html", page, status=status)


# --- screens --------------------------------------------------------------------------------


@require_GET
@role_required(REVIEWERS)
def inbox(request: HttpRequest) -> HttpResponse:
    filters = Filters.from_data(request.GET)
    context = list_context(request.user, filters)
    if request.htmx and request.htmx.target == "list":
        return render(request, "inbox/_list.html", context)
    # Checks decided elsewhere (Slack, an email link, the reviewer API) are told here.
    for told in known_answers.untold(request.user):
        (messages.success if told.caught else messages.error)(request, told.text)
    return render(request, "inbox/page.html", {**context, "nav_active": "inbox"})


# The inbox fetches the next request ahead, while the reviewer reads the one on screen: such
# a fetch is no view (review time counts from the opening), so it records nothing, and the
# page says when it puts the copy on screen (`shown`).
PREFETCH_HEADER = "X-Inbox-Prefetch"
# Sent with a one-key decision when the page already shows the next request: the answer is
# then the toast alone, without finding and rendering the next item.
NEXT_SHOWN_HEADER = "X-Inbox-Next-Shown"


@require_GET
@role_required(REVIEWERS)
def item(request: HttpRequest, pk: int) -> HttpResponse:
    req = get_request_for_reviewer(request.user, pk)
    if req.is_pending and not request.headers.get(PREFETCH_HEADER):
        record_first_view(req, by=request.user)
    return render_item(request, req)


@require_POST
@role_required(REVIEWERS)
def shown(request: HttpRequest, pk: int) -> HttpResponse:
    """The page put a copy it fetched ahead on screen: the reviewer opened the request now."""
    req = get_request_for_reviewer(request.user, pk, only=("status", "first_viewed_at"))
    if req.is_pending:
        record_first_view(req, by=request.user)
    return HttpResponse(status=204)


@require_GET
@role_required(REVIEWERS)
def item_raw(request: HttpRequest, pk: int) -> JsonResponse:
    """What the agent sent for the reviewer to weigh, whole, for a payload too big to show."""
    req = get_request_for_reviewer(request.user, pk)
    data = {"proposed_action": req.proposed_action, "attributes": req.attributes}
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False})


@require_GET
@role_required(REVIEWERS)
def poll(request: HttpRequest) -> HttpResponse:
    """The list, refreshed every few seconds. It says so when the open item was settled or
    revised meanwhile, and which of the rows the reviewer had in view someone else settled."""
    filters = Filters.from_data(request.GET)
    context = list_context(request.user, filters)
    current = posted_id(request.GET.get("current", ""))
    if current is not None:
        open_item = (
            requests_for_reviewer(request.user)
            .filter(pk=current)
            .select_related("decision__decided_by")
            .first()
        )
        seen = parse_version(request.GET.get("current_version"))
        settled_by_me = getattr(open_item, "decision", None) is not None and (
            open_item.decision.decided_by_id == request.user.pk
        )
        if open_item is not None and not open_item.is_pending and not settled_by_me:
            context["closed_notice"] = str(AlreadyDecided(open_item))
            context["closed_pk"] = open_item.pk
        elif (
            open_item is not None
            and open_item.is_pending
            and request.GET.get("current_turn") == ReviewRequest.Turn.AGENT
            and open_item.turn == ReviewRequest.Turn.REVIEWER
        ):
            # The agent answered (or revised) the item on screen: say so, and offer it.
            context["returned"] = open_item
            context["returned_state"] = conversation_state(
                open_item, list(open_item.messages.all())
            )
        elif open_item is not None and seen is not None and seen != open_item.proposal_version:
            context["revised"] = open_item
            context["revised_delta"] = changes_since(open_item, seen)
    shown = {pk for pk in map(posted_id, request.GET.get("shown", "").split(",")[:LIST_SIZE])}
    left = shown - {row.pk for row in context["rows"]} - {None}
    context["settled_notice"] = settled_elsewhere(request.user, left)
    return render(request, "inbox/_poll.html", context)


def posted_id(raw: str) -> int | None:
    return validation.parse_id(raw.strip())


def settled_elsewhere(user: Any, ids: set[int]) -> str:
    """The notice for rows that left the reviewer's view because another actor (a colleague,
    the deadline, the agent) settled them. Rows the reviewer settled, and rows still pending
    that merely moved out of the first page or out of the filter, say nothing."""
    if not ids:
        return ""
    gone = [
        r
        for r in requests_for_reviewer(user)
        .filter(pk__in=ids)
        .exclude(status=Status.PENDING)
        .select_related("decision__decided_by")
        .order_by("pk")
        if getattr(r, "decision", None) is None or r.decision.decided_by_id != user.pk
    ]
    if not gone:
        return ""
    if len(gone) == 1:
        return f"#{gone[0].pk} was {settled_by(gone[0])} and left your list."
    parts = [f"#{r.pk} {settled_by(r)}" for r in gone[:3]]
    more = f", and {len(gone) - 3} more" if len(gone) > 3 else ""
    return f"{len(gone)} requests left your list: {', '.join(parts)}{more}."


@require_GET
@role_required(REVIEWERS)
def group(request: HttpRequest, key: str) -> HttpResponse:
    """Pending requests alike enough to decide together, in a compact table."""
    visible = requests_for_reviewer(request.user).filter(group_key=key)
    rows = list(
        visible.filter(status=Status.PENDING)
        .exclude(four_eyes_taken(request.user))  # as the list: it waits for someone else
        .select_related("category", "assignee")
        .order_by(*INBOX_ORDER)[:GROUP_TABLE_SIZE]
    )
    if not rows and not visible.exists():
        raise Http404("No such group.")
    record_first_views([r.pk for r in rows], by=request.user)
    columns: list[str] = []
    if rows:
        columns = [
            k
            for k, v in rows[0].attributes.items()
            if not isinstance(v, (bool, dict, list)) and v is not None
        ][:4]
    for row in rows:
        row.cells = [display_value(row.attributes.get(c, "")) for c in columns]
    first = rows[0] if rows else None
    amounts = [r.attributes["amount"] for r in rows if engine.is_number(r.attributes.get("amount"))]
    context = {
        "key": key,
        "group_rows": rows,
        "columns": columns,
        "first": first,
        "fired": fired_summary(first.fired_rules) if first else [],
        "amount_range": (min(amounts), max(amounts)) if amounts else None,
        "recommended_label": first.option_labels.get(first.recommended_option, "") if first else "",
        "reject_reasons": REJECT_REASONS,
    }
    return render_pane(request, "inbox/_group.html", context, pane="group")


# --- actions --------------------------------------------------------------------------------


@require_POST
@role_required(REVIEWERS)
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    # decide_request reads the request again with what it needs; a refusal re-reads it whole.
    queue_ids = reviewer_queue_ids(request.user)
    req = get_request_for_reviewer(
        request.user, pk, only=("proposed_action", "bundle_id"), queue_ids=queue_ids
    )  # next_item reads its bundle
    # A respond is a rejection whose reason is the answer (Decision.responded).
    responded = request.POST.get("outcome", "") == Verb.RESPOND
    outcome = Outcome.REJECTED if responded else OUTCOMES.get(request.POST.get("outcome", ""))
    option = request.POST.get("option", "")
    reason = request.POST.get("reason", "").strip()[:2000]
    version = parse_version(request.POST.get("version"))
    if version is None:  # a page from before versions, or a hand-made POST: show what is there
        return _refused(request, get_request_for_reviewer(request.user, pk), OUTDATED_PAGE, 409)
    # The four-eyes stage the page showed (services.four_eyes): a confirmation names it.
    seen_stage = request.POST.get("four_eyes", "") or None
    if seen_stage is not None and seen_stage not in four_eyes.STAGES:
        return _refused(
            request, get_request_for_reviewer(request.user, pk), "Unknown four-eyes stage.", 422
        )
    try:
        final_action = posted_final_action(
            outcome, req.proposed_action, request.POST.get("final_action", "")
        )
        decision = decide_request(
            req.pk,
            by=request.user,
            outcome=outcome,
            final_action=final_action,
            chosen_option=option,
            reason=reason,
            channel=Decision.Channel.WEB,
            version=version,
            responded=responded,
            four_eyes_seen=seen_stage,
        )
    except StaleProposal as exc:  # the page showed an older proposal: show this one
        return _refused(
            request,
            get_request_for_reviewer(request.user, pk),
            exc.headline,
            409,
            changes=exc.delta,
        )
    except DecisionNotAllowed as exc:  # a forged or outdated form: the page never offered it
        return _refused(request, get_request_for_reviewer(request.user, pk), str(exc), 422)
    except TransitionError as exc:  # AlreadyDecided, StateChanged: nothing changed
        return _refused(request, get_request_for_reviewer(request.user, pk), str(exc), 409)
    except ValidationError as exc:
        error = " ".join(exc.messages)
        return _refused(
            request,
            get_request_for_reviewer(request.user, pk),
            error,
            422,
            modify_error=error if outcome == Outcome.MODIFIED else "",
            modify_text=request.POST.get("final_action", ""),
            respond_error=error if responded else "",
            respond_text=reason,
        )

    if isinstance(decision, FourEyesStep):  # pending: another reviewer decides next
        verb = decision.get_outcome_display().lower()
        toast = {"text": four_eyes.step_words(decision), "outcome": "info"}
    else:
        verb = decision.verb_label.lower()
        toast = {
            "text": f"#{req.pk} {verb}{four_eyes.final_words(decision)}",
            "outcome": decision.shown_as,
            "undo_url": reverse("inbox_undo", args=[req.pk]),
            "seconds": max(round((decision.effective_at - timezone.now()).total_seconds()), 0),
        }
    # Only a known-answer check has a result to tell: the others pay no query for it.
    told = None
    if not isinstance(decision, FourEyesStep) and decision.request.is_check:
        told = known_answers.result_for(req.pk, request.user)
    if told:
        # A known-answer check: the reviewer hears how they did at once; told, it is no
        # longer a test, so there is nothing to undo.
        toast.update(check=told.text, caught=told.caught, undo_url="", seconds=0)
    if request.htmx and request.headers.get(NEXT_SHOWN_HEADER):
        return render(request, "inbox/_toast.html", {"toast": toast})
    filters = Filters.from_data(request.POST)
    following = next_item(request.user, queue_ids, filters, request.POST.get("next", ""), req)
    if not request.htmx:
        if told:
            (messages.success if told.caught else messages.error)(request, told.text)
        else:
            undo = (
                "" if isinstance(decision, FourEyesStep) else " You can undo it for a few seconds."
            )
            messages.success(request, f"{toast['text']}.{undo}")
        target = reverse("inbox_item", args=[following.pk]) if following else reverse("inbox")
        return redirect(target + (f"?{filters.querystring()}" if filters.active else ""))
    if following is not None:
        record_first_view(following, by=request.user)
        context = item_context(following, request.user)
    else:
        context = {"req": None}
    context.update(toast=toast, removed_pk=req.pk)
    response = render(request, "inbox/_decided.html", context)
    url = reverse("inbox_item", args=[following.pk]) if following else reverse("inbox")
    return push_url(response, url + (f"?{filters.querystring()}" if filters.active else ""))


OUTDATED_PAGE = (
    "This page did not say which version of the proposal you decided on, so nothing was "
    "decided. Here is the current one."
)


def _refused(
    request: HttpRequest, req: ReviewRequest, notice: str, status: int, **extra: Any
) -> HttpResponse:
    return render_item(request, req, status=status, notice=notice, **extra)


@require_POST
@role_required(REVIEWERS)
def undo(request: HttpRequest, pk: int) -> HttpResponse:
    req = get_request_for_reviewer(request.user, pk)
    try:
        req = undo_decision(req.pk, by=request.user)
    except TransitionError as exc:
        if not request.htmx:
            messages.error(request, str(exc))
            return redirect("inbox_item", pk=pk)
        return toast_only(request, str(exc), 409)
    req = get_request_for_reviewer(request.user, pk)
    if not request.htmx:
        messages.success(request, f"#{pk} is pending again.")
        return redirect("inbox_item", pk=pk)
    record_first_view(req, by=request.user)
    toast = {"text": f"Undone: #{pk} is pending again", "outcome": "info"}
    response = render(
        request, "inbox/_undone.html", {**item_context(req, request.user), "toast": toast}
    )
    push_url(response, reverse("inbox_item", args=[pk]))
    return trigger_client_event(response, "inbox:refresh")


@require_POST
@role_required(REVIEWERS)
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    req = get_request_for_reviewer(request.user, pk)
    kind = request.POST.get("kind", Message.Kind.COMMENT)
    body = request.POST.get("body", "").strip()
    error = ""
    if kind not in REPLY_KINDS:
        error = "Choose reply, question or new instructions."
    elif not body:
        error = "Write something for the agent first."
    elif len(body) > 5000:
        error = "Keep it under 5,000 characters."
    if not error:
        post_message(
            req, author_kind=Message.Author.REVIEWER, author=request.user, kind=kind, body=body
        )
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("inbox_item", pk=pk)
    # The whole item: a question or instructions hand it to the agent, which changes what the
    # item says (waiting on the agent, the deadline paused) and where the list puts it.
    req = get_request_for_reviewer(request.user, pk)
    response = render_item(
        request,
        req,
        status=422 if error else 200,
        reply_error=error,
        reply_body=body if error else "",
        reply_kind=kind,
    )
    return response if error else trigger_client_event(response, "inbox:refresh")


def toast_only(request: HttpRequest, text: str, status: int) -> HttpResponse:
    response = render(request, "inbox/_toast.html", {"toast": {"text": text}}, status=status)
    response["HX-Retarget"] = "#toast"
    response["HX-Reswap"] = "outerHTML"
    return response


# --- second reviews (blind) and periodic review, worked in the inbox -------------------------
