"""Admins' pages: categories and their policies (edit, preview, versions), queues and their
reviewers, agents and their tokens. Writes go through reviews.services.policies and
reviews.services.setup; the preview and diffs come from reviews.policies."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import policies, validation
from .. import rules as engine
from ..access import ADMINS, REVIEWERS, role_required
from ..insights.damage import Damage, cost_attributes
from ..insights.readiness import Readiness, readiness_of
from ..models import (
    Agent,
    AgentToken,
    Category,
    CategoryAutonomy,
    EscalationRule,
    KnownAnswerSource,
    PolicyVersion,
    Queue,
    recent_attributes,
)
from ..monitoring import watched_damage
from ..policies import RuleInput
from ..policy_forms import (
    AgentForm,
    AwayForm,
    PolicyForm,
    QueueForm,
    RuleFormSet,
    TokenForm,
    parse_value,
    rule_initial,
    suggested_mode,
)
from ..services import known_answers
from ..services.assignment import set_away
from ..services.policies import (
    NothingChanged,
    StalePolicy,
    latest_version,
    restore_policy_version,
    save_policy,
)
from ..services.setup import (
    issue_agent_token,
    revoke_agent_token,
    rotate_webhook_secret,
    save_agent,
    save_queue,
)

# --- categories --------------------------------------------------------------------------


@require_GET
@role_required(ADMINS)
def policy_list(request: HttpRequest) -> HttpResponse:
    categories = Category.objects.select_related("queue").annotate(
        rule_count=Count("rules", filter=Q(rules__enabled=True))
    )
    figures = policies.recent_figures(days=30)
    rows = [(category, figures.get(category.pk)) for category in categories]
    context = {"nav_active": "policies", "admin_tab": "categories", "rows": rows}
    return render(request, "policies/list.html", context)


def _edit_context(
    request: HttpRequest,
    category: Category,
    form: PolicyForm,
    formset: Any,
    **extra: Any,
) -> dict[str, Any]:
    recent = recent_attributes(category.pk)
    fields = {"confidence"}
    for attrs in recent:
        if isinstance(attrs, dict):
            fields.update(attrs)
    return {
        "nav_active": "policies",
        "admin_tab": "categories",
        "category": category,
        "form": form,
        "formset": formset,
        "latest": latest_version(category),
        "global_rules": EscalationRule.objects.filter(category__isnull=True).order_by("order"),
        "known_fields": sorted(fields),
        "cost_fields": cost_attributes(recent),
        "readiness": form.readiness,
        "damage": _damage(category, form.saved_readiness),
        "suggested": suggested_mode(form["reversibility"].value(), form["blast_radius"].value()),
        "suggestions": {
            f"{r}|{b}": suggested_mode(r, b)
            for r in Category.Reversibility.values
            for b in Category.BlastRadius.values
        },
        **extra,
    }


def _damage(category: Category, state: Readiness | None) -> Damage | None:
    """The damage figures beside the accepted one, with the saved cost settings: at stake
    before a switch, the damage watch's month while autonomous."""
    if state is not None:
        return state.damage
    autonomy = CategoryAutonomy.objects.filter(category=category).first()
    if autonomy is None or not autonomy.monitoring:
        return None
    return watched_damage(autonomy)


def _render_editor(request: HttpRequest, context: dict[str, Any], status: int = 200) -> Any:
    template = "policies/edit.html"
    if request.htmx:
        template += "#editor"
    response = render(request, template, context, status=status)
    if request.htmx and status >= 400:
        # htmx leaves a 4xx unswapped: name the editor so the fields' messages are shown
        # (static/js/htmx-errors.js swaps a refusal that names where it goes).
        response["HX-Retarget"] = "#editor"
        response["HX-Reswap"] = "outerHTML"
    return response


def _prefill(
    request: HttpRequest, category: Category, initial: list[dict], form_initial: dict[str, Any]
) -> list[str]:
    """Apply ?rule=<id>&value=<v> (change a rule) or ?field=&operator=&value= (a new rule),
    and ?mode= (the mode to propose) and ?days= (the preview's window)."""
    notes: list[str] = []
    params = request.GET
    if "days" in params:
        days = validation.parse_id(params["days"])
        if days is None or not 1 <= days <= policies.PREVIEW_DAYS_MAX:
            messages.warning(
                request,
                f"days={params['days']!r} is not a preview window: use 1 to "
                f"{policies.PREVIEW_DAYS_MAX} days. The preview covers the last "
                f"{policies.PREVIEW_DAYS_DEFAULT}.",
            )
        else:
            form_initial["days"] = days
    if "mode" in params and params["mode"] != category.mode:
        if params["mode"] not in Category.Mode.values:
            messages.warning(
                request,
                f"mode={params['mode']!r} is not a mode (use {', '.join(Category.Mode.values)}); "
                f"the mode stays {category.mode}.",
            )
        else:
            form_initial["mode"] = params["mode"]
            note = f"mode {category.mode} → {params['mode']}"
            if category.mode == Category.Mode.AUTONOMOUS:
                note += " (an autonomous category sends nothing to a person, whatever its rules)"
            notes.append(note)
    if "rule" in params:
        try:
            rule_id = int(params["rule"])
        except ValueError:
            rule_id = None
        row = next((row for row in initial if row["id"] == rule_id), None)
        if row is None:
            messages.warning(request, f"Rule {params['rule']} is not a rule of {category.name}.")
        elif "value" in params:
            old = row["value"]
            row["value"] = params["value"]
            row["enabled"] = True
            notes.append(f"{row['field']}: value {old or '(none)'} → {params['value']}")
    elif "field" in params:
        operator = params.get("operator", "lt")
        initial.append(
            {
                "id": None,
                "enabled": True,
                "field": params["field"],
                "operator": operator if operator in engine.OPERATORS else "lt",
                "value": params.get("value", ""),
                "description": params.get("description", ""),
                "ORDER": len(initial),
            }
        )
        notes.append(f"a new rule on {params['field']}")
    return notes


def _prefilled_rules(initial: list[dict]) -> list[RuleInput] | None:
    """The rule set a pre-filled editor shows, if every rule in it is valid."""
    rules = []
    for row in initial:
        value = parse_value(row["operator"], row["value"])
        try:
            engine.validate_rule(row["field"], row["operator"], value)
        except engine.RuleValidationError:
            return None
        rules.append(
            RuleInput(
                row["field"], row["operator"], value, row["enabled"], row["description"], row["id"]
            )
        )
    return rules


def _readiness(category: Category) -> Readiness | None:
    """Readiness of a category not yet autonomous (the editor warns before switching it)."""
    if category.mode == Category.Mode.AUTONOMOUS:
        return None
    (state,) = readiness_of(category_id=category.pk)
    return state


@require_http_methods(["GET", "POST"])
@role_required(ADMINS)
def policy_edit(request: HttpRequest, slug: str) -> HttpResponse:
    category = get_object_or_404(Category.objects.select_related("queue"), slug=slug)
    # The form gets its own copy: a bound ModelForm writes into its instance, and the preview
    # compares against the category as saved.
    editable = Category.objects.get(pk=category.pk)
    state = _readiness(category)
    if request.method == "GET":
        initial = [rule_initial(rule, i) for i, rule in enumerate(category.rules.all())]
        form_initial: dict[str, Any] = {"version": category.version}
        notes = _prefill(request, category, initial, form_initial)
        form = PolicyForm(instance=editable, initial=form_initial, readiness=state)
        formset = RuleFormSet(initial=initial, category=category, prefix="rules")
        extra: dict[str, Any] = {"prefill_notes": notes}
        rules = _prefilled_rules(initial) if notes else None
        if rules is not None:
            extra["preview"] = policies.preview_policy(
                category,
                mode=form_initial.get("mode", category.mode),
                rules=rules,
                days=form_initial.get("days", policies.PREVIEW_DAYS_DEFAULT),
            )
        return render(
            request, "policies/edit.html", _edit_context(request, category, form, formset, **extra)
        )

    action = request.POST.get("action", "preview")
    form = PolicyForm(request.POST, instance=editable, saving=action == "save", readiness=state)
    formset = RuleFormSet(request.POST, category=category, prefix="rules")
    if not (form.is_valid() and formset.is_valid()):
        context = _edit_context(request, category, form, formset, invalid=True)
        return _render_editor(request, context, status=400)

    if action != "save":
        preview = policies.preview_policy(
            category,
            mode=form.cleaned_data["mode"],
            rules=formset.rules(),
            days=form.cleaned_data["days"],
        )
        return _render_editor(
            request, _edit_context(request, category, form, formset, preview=preview)
        )

    note = form.cleaned_data["note"]
    if not note.strip():
        form.add_error("note", "Say why you are changing the policy; it is kept with the version.")
        return _render_editor(request, _edit_context(request, category, form, formset), 400)
    if override := form.override_note():
        note = f"{note.strip()}\n{override}"
    try:
        version = save_policy(
            category.pk,
            expected_version=form.cleaned_data["version"],
            policy=form.policy(),
            rules=formset.rules(),
            note=note,
            by=request.user,
        )
    except StalePolicy as stale:
        # Keep the admin's edits on screen, now based on the latest version: saving again is
        # an informed, explicit choice to replace the other admin's change.
        data = request.POST.copy()
        data["version"] = str(stale.category.version)
        form = PolicyForm(
            data, instance=Category.objects.get(pk=category.pk), saving=True, readiness=state
        )
        formset = RuleFormSet(data, category=category, prefix="rules")
        form.is_valid(), formset.is_valid()
        context = _edit_context(request, stale.category, form, formset, stale=stale)
        return _render_editor(request, context, status=409)
    except NothingChanged as unchanged:
        messages.info(request, str(unchanged))
        return _render_editor(request, _edit_context(request, category, form, formset))
    except ValidationError as exc:
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
        return _render_editor(request, _edit_context(request, category, form, formset), 400)
    messages.success(request, f"Saved {category.name} as version {version.number}.")
    url = reverse("policy_edit", args=[category.slug])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@require_GET
@role_required(ADMINS)
def policy_versions(request: HttpRequest, slug: str) -> HttpResponse:
    category = get_object_or_404(Category, slug=slug)
    versions = list(category.versions.select_related("created_by").order_by("-number"))
    for version in versions:
        version.cost = policies.snapshot_cost(version.snapshot["policy"])
    context = {
        "nav_active": "policies",
        "admin_tab": "categories",
        "category": category,
        "versions": versions,
        "current_number": category.version,
    }
    return render(request, "policies/versions.html", context)


@require_POST
@role_required(ADMINS)
def policy_restore(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    category = get_object_or_404(Category, slug=slug)
    version = get_object_or_404(PolicyVersion, category=category, number=number)
    try:
        expected = int(request.POST.get("version", ""))
    except ValueError:
        expected = -1
    try:
        saved = restore_policy_version(
            version.pk,
            expected_version=expected,
            note=request.POST.get("note", ""),
            by=request.user,
        )
    except StalePolicy as stale:
        messages.error(request, f"{stale} Look at the newest version, then restore again.")
    except NothingChanged:
        messages.info(request, f"Version {number} is what is in force already.")
    except ValidationError as exc:
        for errors in exc.message_dict.values():
            for error in errors:
                messages.error(request, f"Version {number} was not restored: {error}")
    else:
        messages.success(request, f"Restored version {number} as version {saved.number}.")
    return redirect("policy_versions", slug=category.slug)


# --- queues and reviewers ------------------------------------------------------------------


def _reviewers() -> Any:
    users = get_user_model().objects.filter(groups__name=REVIEWERS, is_active=True)
    return users.select_related("reviewer_profile").prefetch_related("review_queues").distinct()


@require_http_methods(["GET", "POST"])
@role_required(ADMINS)
def queue_list(request: HttpRequest) -> HttpResponse:
    form = QueueForm(request.POST or None, prefix="new")
    if request.method == "POST" and form.is_valid():
        queue = save_queue(form, by=request.user)
        messages.success(request, f"Created the queue {queue.name}.")
        return redirect("queues")
    queues = (
        Queue.objects.select_related("next_queue")
        .prefetch_related(
            Prefetch("members", queryset=get_user_model().objects.order_by("username"))
        )
        .annotate(category_count=Count("categories", distinct=True))
    )
    queues = list(queues)
    by_id = {queue.pk: queue for queue in queues}
    for queue in queues:
        queue.chain = _chain(queue, by_id)
    reviewers = [(user, AwayForm(prefix=f"away-{user.pk}")) for user in _reviewers()]
    context = {
        "nav_active": "policies",
        "admin_tab": "queues",
        "queues": queues,
        "form": form,
        "reviewers": reviewers,
    }
    return render(request, "policies/queues.html", context, status=400 if form.errors else 200)


def _chain(queue: Queue, by_id: dict[int, Queue]) -> list[str]:
    names, seen, current = [], set(), queue.next_queue_id
    while current is not None and current not in seen and current in by_id:
        seen.add(current)
        names.append(by_id[current].name)
        current = by_id[current].next_queue_id
    return names


@require_http_methods(["GET", "POST"])
@role_required(ADMINS)
def queue_edit(request: HttpRequest, pk: int) -> HttpResponse:
    queue = get_object_or_404(Queue, pk=pk)
    form = QueueForm(request.POST or None, instance=queue)
    if request.method == "POST" and form.is_valid():
        save_queue(form, by=request.user)
        messages.success(request, f"Saved the queue {queue.name}.")
        return redirect("queues")
    return _queue_page(request, queue, form, status=400 if form.errors else 200)


def _queue_page(
    request: HttpRequest,
    queue: Queue,
    form: QueueForm | None = None,
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    # A refused known-answer form shows the queue as saved, not what the queue form last held.
    queue.refresh_from_db()
    context = {
        "nav_active": "policies",
        "admin_tab": "queues",
        "queue": queue,
        "form": form or QueueForm(instance=queue),
        "known": known_answers.queue_summary(queue),
        "known_rate": extra.pop("known_rate", f"{queue.known_answer_rate * 100:g}"),
        **extra,
    }
    return render(request, "policies/queue_edit.html", context, status=status)


@require_POST
@role_required(ADMINS)
def queue_known_answers(request: HttpRequest, pk: int) -> HttpResponse:
    """Turn the queue's known-answer checks on or off, and set their rate (a percentage)."""
    queue = get_object_or_404(Queue, pk=pk)
    rate = request.POST.get("rate", "")
    try:
        queue = known_answers.configure(
            queue, enabled=request.POST.get("enabled") == "on", rate=rate, by=request.user
        )
    except ValidationError as exc:
        return _queue_page(
            request, queue, status=400, known_error=" ".join(exc.messages), known_rate=rate[:40]
        )
    state = f"on, at {queue.known_answer_rate * 100:g}%" if queue.known_answers else "off"
    messages.success(request, f"Known-answer checks in {queue.name} are {state}.")
    return redirect(reverse("queue_edit", args=[queue.pk]) + "#known-answers")


@require_POST
@role_required(ADMINS)
def queue_known_answer_source(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark a past request of the queue as a known answer, with its right outcome."""
    queue = get_object_or_404(Queue, pk=pk)
    try:
        source = known_answers.mark_source(
            queue, request.POST.get("request", ""), request.POST.get("outcome", ""), by=request.user
        )
    except ValidationError as exc:
        return _queue_page(request, queue, status=400, source_error=" ".join(exc.messages))
    messages.success(
        request,
        f"#{source.request_id} is a known answer: the right answer is "
        f"{'approve' if source.outcome == KnownAnswerSource.Outcome.APPROVED else 'reject'}.",
    )
    return redirect(reverse("queue_edit", args=[queue.pk]) + "#known-answers")


@require_POST
@role_required(ADMINS)
def queue_known_answer_unmark(request: HttpRequest, pk: int, source_id: int) -> HttpResponse:
    queue = get_object_or_404(Queue, pk=pk)
    source = get_object_or_404(
        KnownAnswerSource.objects.select_related("request"), pk=source_id, request__queue=queue
    )
    known_answers.unmark_source(source, by=request.user)
    messages.success(request, f"#{source.request_id} is no longer a marked known answer.")
    return redirect(reverse("queue_edit", args=[queue.pk]) + "#known-answers")


@require_POST
@role_required(ADMINS)
def reviewer_away(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(_reviewers(), pk=user_id)
    form = AwayForm(request.POST, prefix=f"away-{user.pk}")
    if request.POST.get("back"):
        set_away(user, None, by=request.user)
        messages.success(request, f"{user.get_username()} is back: new work can reach them.")
    elif form.is_valid():
        until = form.cleaned_data["until"]
        set_away(user, until, by=request.user)
        messages.success(request, f"{user.get_username()} is away until {until:%Y-%m-%d %H:%M}.")
    else:
        messages.error(request, f"Pick the date and time {user.get_username()} is back.")
    return redirect(reverse("queues") + "#reviewers")


# --- agents --------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(ADMINS)
def agent_list(request: HttpRequest) -> HttpResponse:
    form = AgentForm(request.POST or None, prefix="new", initial={"is_active": True})
    if request.method == "POST" and form.is_valid():
        agent = save_agent(form, by=request.user)
        messages.success(request, f"Created the agent {agent.name}. Issue it a token below.")
        return redirect("agent_detail", pk=agent.pk)
    agents = Agent.objects.annotate(
        active_tokens=Count("tokens", filter=Q(tokens__revoked_at__isnull=True)),
    ).prefetch_related(
        Prefetch(
            "tokens", queryset=AgentToken.objects.order_by("-last_used_at"), to_attr="all_tokens"
        )
    )
    rows = [
        (a, next((t.last_used_at for t in a.all_tokens if t.last_used_at), None)) for a in agents
    ]
    context = {"nav_active": "policies", "admin_tab": "agents", "rows": rows, "form": form}
    return render(request, "policies/agents.html", context, status=400 if form.errors else 200)


def _agent_page(request: HttpRequest, agent: Agent, status: int = 200, **extra: Any) -> Any:
    context = {
        "nav_active": "policies",
        "admin_tab": "agents",
        "agent": agent,
        "form": extra.pop("form", None) or AgentForm(instance=agent),
        "token_form": extra.pop("token_form", None) or TokenForm(),
        "tokens": agent.tokens.order_by("revoked_at", "-created_at"),
        "in_overlap": len(agent.signing_secrets()) > 1,
        **extra,
    }
    return render(request, "policies/agent.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(ADMINS)
def agent_detail(request: HttpRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=pk)
    if request.method == "GET":
        return _agent_page(request, agent)
    form = AgentForm(request.POST, instance=Agent.objects.get(pk=pk))
    if form.is_valid():
        save_agent(form, by=request.user)
        messages.success(request, f"Saved the agent {agent.name}.")
        return redirect("agent_detail", pk=agent.pk)
    return _agent_page(request, agent, status=400, form=form)


@require_POST
@role_required(ADMINS)
def agent_token_issue(request: HttpRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=pk)
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _agent_page(request, agent, status=400, token_form=form)
    token, raw = issue_agent_token(agent, form.cleaned_data["name"], by=request.user)
    # Rendered, not redirected: the raw token must never sit in a session or a message cookie.
    response = _agent_page(request, agent, new_token=token, raw_token=raw)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@role_required(ADMINS)
def agent_token_revoke(request: HttpRequest, pk: int, token_id: int) -> HttpResponse:
    token = get_object_or_404(AgentToken.objects.select_related("agent"), pk=token_id, agent_id=pk)
    revoke_agent_token(token, by=request.user)
    messages.success(request, f"Revoked the token {token.prefix}…; calls with it now fail.")
    return redirect("agent_detail", pk=pk)


@require_POST
@role_required(ADMINS)
def agent_webhook_secret_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    agent = rotate_webhook_secret(get_object_or_404(Agent, pk=pk), by=request.user)
    until = agent.previous_secret_valid_until()
    messages.success(
        request,
        f"Rotated the webhook secret of {agent.name}; deliveries carry a signature with the old "
        f"one too until {until:%Y-%m-%d %H:%M}.",
    )
    return redirect("agent_detail", pk=pk)
