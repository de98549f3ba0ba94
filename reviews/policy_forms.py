"""Forms for the admins' pages: a category's policy, its rules (a formset), queues, agents,
and the away form that reviewers use too.

Rule values are typed as admins think of them ("0.7", "enterprise, strategic", "true") and
parsed per operator; reviews.rules.validate_rule then names the field at fault.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import MinValueValidator
from django.db.models import Q
from django.utils import timezone

from . import rules as engine
from .access import ADMINS, REVIEWERS
from .insights.readiness import Readiness, under_policy
from .models import (
    MAX_ANSWER_TIMEOUT,
    Agent,
    Category,
    EscalationRule,
    Queue,
    cost_problem,
)
from .policies import POLICY_FIELDS, PREVIEW_DAYS_DEFAULT, PREVIEW_DAYS_MAX, RuleInput, duration
from .services.turns import answer_timeout_words

# A public (C…) or private (G…) Slack channel's ID.
SLACK_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{6,20}")
OPERATOR_CHOICES = [(op, engine.OPERATOR_LABELS[op]) for op in engine.OPERATOR_LABELS]


def parse_scalar(text: str) -> Any:
    """'12' -> 12, '0.7' -> 0.7, 'true' -> True, '"12"' -> '12', anything else stays text."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if engine.is_number(number) else text


def parse_value(operator: str, text: str) -> Any:
    """The rule value for what an admin typed, by operator."""
    text = (text or "").strip()
    if operator in engine.VALUELESS_OPERATORS:
        return None if text == "" else parse_scalar(text)
    if operator in engine.LIST_OPERATORS:
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                return text
        return [parse_scalar(part) for part in text.split(",") if part.strip()]
    if text == "":
        return None
    return parse_scalar(text)


def value_for_input(value: Any) -> str:
    """The inverse of parse_value, for showing a saved value in the form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value_for_input(v) for v in value)
    if isinstance(value, str) and (value.lower() in ("true", "false") or _looks_numeric(value)):
        return f'"{value}"'
    return str(value)


def _looks_numeric(value: Any) -> bool:
    return isinstance(value, str) and parse_scalar(value) != value


class CostChecks:
    """A ModelForm mixin for the forms that edit a category (the policy editor, Django admin).

    The rules are the model's (models.cost_policy_errors, run by Category.clean()); this only
    words a cost out of range as they do, and keeps the model's complaints about values the
    form already refused from piling up beside its own message."""

    cleaned_data: dict[str, Any]
    errors: Any

    def clean_cost_per_error(self) -> float | None:
        return _cost(self.cleaned_data["cost_per_error"])

    def clean_accepted_damage(self) -> float | None:
        return _cost(self.cleaned_data["accepted_damage"])

    def _update_errors(self, errors: forms.ValidationError) -> None:
        # Category.clean() judges the category as the form filled it in, but a field the form
        # refused keeps its saved value there ("abc" for a cost leaves the old cost): a
        # complaint about that field would be about a value nobody typed.
        if hasattr(errors, "error_dict"):
            errors = forms.ValidationError(
                {name: e for name, e in errors.error_dict.items() if name not in self.errors}
            )
        super()._update_errors(errors)  # type: ignore[misc]


def _cost(value: float | None) -> float | None:
    if problem := cost_problem(value):
        raise forms.ValidationError(problem)
    return value


class CategoryAdminForm(CostChecks, forms.ModelForm):
    """Django admin's category form: the same checks as the policy editor (the admin gives it
    its model and fields)."""


class PolicyForm(CostChecks, forms.ModelForm):
    """A category's policy; `version` is the one the admin started from."""

    version = forms.IntegerField(widget=forms.HiddenInput)
    days = forms.IntegerField(
        label="Preview the last",
        min_value=1,
        max_value=PREVIEW_DAYS_MAX,
        initial=PREVIEW_DAYS_DEFAULT,
        required=False,
        help_text="days",
    )
    note = forms.CharField(
        label="Why this change",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required to save. Reviewers and auditors read it in the history.",
    )
    override_readiness = forms.BooleanField(
        label="Switch to autonomous although it is not ready",
        required=False,
        help_text="The reason above and the blockers are kept with the version and the audit.",
    )

    class Meta:
        model = Category
        fields = POLICY_FIELDS  # the form edits exactly what a version records
        labels = {
            "mode_reason": "Reason for overriding the suggested mode",
            "timeout_seconds": "Timeout (seconds)",
            "answer_timeout_seconds": "Answer timeout (seconds)",
            "answer_timeout_action": "If the agent does not answer",
            "sample_rate": "Sample rate (0 to 1)",
            "second_review_rate": "Second review rate (0 to 1)",
            "four_eyes": "Four eyes: two different reviewers must agree to approve",
            "cost_kind": "An error costs",
            "cost_attribute": "Cost attribute",
            "cost_price_attribute": "Unit price attribute",
            "cost_per_error": "Cost per error",
            "cost_unit": "Cost unit",
            "accepted_damage": "Accepted damage a month",
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "guidelines": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(
        self,
        *args: Any,
        saving: bool = False,
        readiness: Readiness | None = None,
        **kwargs: Any,
    ):
        # A preview may leave the override reason empty; a save may not.
        self.saving = saving
        # The category's readiness, given while it is not autonomous yet: switching it from
        # here is then the same decision as the autonomy page's button.
        self.readiness = readiness
        # As saved: what the editor shows as today's figures, whatever is being edited.
        self.saved_readiness = readiness
        super().__init__(*args, **kwargs)
        self.fields[
            "timeout_seconds"
        ].help_text = f"Now {duration(self.instance.timeout_seconds)}. 3600 is 1 h, 86400 is 1 day."
        timeout = self.fields["timeout_seconds"]
        # One clear message for zero and negatives alike (clean_timeout_seconds), not two.
        timeout.validators = [v for v in timeout.validators if not isinstance(v, MinValueValidator)]
        timeout.widget.attrs.update({"min": 1, "step": 1})
        answer = self.fields["answer_timeout_seconds"]
        answer.help_text = (
            f"Now {duration(self.instance.answer_timeout_seconds)}: how long the agent has to "
            "answer a reviewer's question or instructions. The reviewer's deadline stands "
            "still meanwhile."
        )
        answer.validators = [v for v in answer.validators if not isinstance(v, MinValueValidator)]
        answer.widget.attrs.update({"min": 1, "max": MAX_ANSWER_TIMEOUT, "step": 1})
        self.fields["answer_timeout_action"].help_text = "Now: " + answer_timeout_words(
            self.instance
        )
        for rate in ("sample_rate", "second_review_rate"):
            self.fields[rate].widget.attrs.update({"min": 0, "max": 1, "step": 0.01})
        self.fields["queue"].empty_label = None
        for name in ("cost_attribute", "cost_price_attribute"):
            self.fields[name].widget.attrs.update({"list": "cost-fields", "autocomplete": "off"})
        for name in ("cost_per_error", "accepted_damage"):
            # Text, not a number input: a browser sends a mistyped number input ("30e") as
            # empty, and on these optional fields that would quietly delete the figure.
            self.fields[name].widget = forms.TextInput(
                attrs={"inputmode": "decimal", "autocomplete": "off"}
            )
        self._cost_help()

    # Short enough for the editor's narrow column; the model's labels say the same at length.
    COST_KINDS = [
        ("", "Unknown: counted, not costed"),
        (Category.CostKind.ATTRIBUTE, "The action's amount"),
        (Category.CostKind.QUANTITY_PRICE, "Quantity x unit price"),
        (Category.CostKind.FIXED, "A fixed cost per error"),
    ]

    def _cost_help(self) -> None:
        """Help that says the unit the figures are in (as typed, else as saved) and the month."""
        typed = self.data.get("cost_unit") if self.is_bound else None
        unit = (typed if typed is not None else self.instance.cost_unit).strip()
        in_unit = f"in {unit}" if unit else "in the cost unit"
        help_texts = {
            "cost_kind": "How one error this category lets through is costed. Unknown: errors "
            "are counted a month, not costed.",
            "cost_unit": "The unit of every cost here and of the accepted damage: EUR, USD, $, "
            "hours…",
            "cost_attribute": "The attribute of each action that carries its amount (e.g. "
            "amount, order.total); for quantity x unit price, the quantity.",
            "cost_price_attribute": "The attribute that carries the unit price: an error costs "
            "quantity x unit price.",
            "cost_per_error": f"What one error costs, {in_unit}.",
            "accepted_damage": f"What this category's errors may cost in a month (30 days), "
            f"{in_unit}, for it to run without a person: it is ready once the 95% upper bound "
            "stays within it, and an autonomous category's gate comes back once even the lower "
            "bound passes it. Empty: readiness rests on accuracy alone.",
        }
        for name, text in help_texts.items():
            self.fields[name].help_text = text
        self.fields["cost_kind"].choices = self.COST_KINDS
        for name in ("cost_per_error", "accepted_damage"):  # 2000, not 2000.0
            value = self.initial.get(name)
            if isinstance(value, float) and value.is_integer():
                self.initial[name] = int(value)

    def clean_timeout_seconds(self) -> int:
        value = self.cleaned_data["timeout_seconds"]
        if value is None or value <= 0:
            raise forms.ValidationError("A timeout must be at least 1 second.")
        return value

    def clean_answer_timeout_seconds(self) -> int:
        value = self.cleaned_data["answer_timeout_seconds"]
        if value is None or value <= 0:
            raise forms.ValidationError("An answer timeout must be at least 1 second.")
        if value > MAX_ANSWER_TIMEOUT:
            # Beyond any agent's patience, and far enough out a due time overflows the calendar.
            raise forms.ValidationError("An answer timeout is at most 30 days (2592000 seconds).")
        return value

    def clean_sample_rate(self) -> float:
        value = self.cleaned_data["sample_rate"]
        if value is None or not 0 <= value <= 1:
            raise forms.ValidationError("A sample rate is between 0 (none) and 1 (all).")
        return value

    def clean_second_review_rate(self) -> float:
        value = self.cleaned_data["second_review_rate"]
        if value is None or not 0 <= value <= 1:
            raise forms.ValidationError("A second review rate is between 0 (none) and 1 (all).")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.readiness is not None:  # a switch is judged on the costs saved with it
            self.readiness = under_policy(self.readiness, data)
        suggested = suggested_mode(data.get("reversibility"), data.get("blast_radius"))
        mode = data.get("mode")
        if mode and suggested and mode != suggested:
            if self.saving and not (data.get("mode_reason") or "").strip():
                self.add_error(
                    "mode_reason",
                    f"{_mode_label(suggested)} is suggested for this reversibility and blast "
                    f"radius; say why {_mode_label(mode).lower()} is right instead.",
                )
        elif mode:
            data["mode_reason"] = ""
        if self.saving and self.switches_unready(mode) and not data.get("override_readiness"):
            self.add_error(
                "override_readiness",
                f"{self.instance.name} is not ready: {'; '.join(self.readiness.blockers)}. "
                "Tick the box and give the reason to switch it anyway.",
            )
        if data.get("days") is None:
            data["days"] = PREVIEW_DAYS_DEFAULT
        return data

    def switches_unready(self, mode: str | None) -> bool:
        """Whether `mode` turns a category autonomous while its readiness has blockers."""
        return (
            mode == Category.Mode.AUTONOMOUS
            and self.readiness is not None
            and not self.readiness.ready
        )

    def override_note(self) -> str:
        """What the version and the audit keep of a knowing switch of an unready category."""
        if not self.switches_unready(self.cleaned_data.get("mode")):
            return ""
        return (
            f"Switched to autonomous while not ready ({'; '.join(self.readiness.blockers)}): "
            f"{self.cleaned_data.get('mode_reason', '').strip()}"
        )

    def policy(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


def suggested_mode(reversibility: str | None, blast_radius: str | None) -> str | None:
    if not reversibility or not blast_radius:
        return None
    return Category(reversibility=reversibility, blast_radius=blast_radius).suggested_mode


def _mode_label(mode: str) -> str:
    return {
        Category.Mode.GATE: "Gate",
        Category.Mode.RULES: "Rules",
        Category.Mode.AUTONOMOUS: "Autonomous",
    }.get(mode, mode)


class RuleForm(forms.Form):
    id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    enabled = forms.BooleanField(required=False, initial=True, label="On")
    field = forms.CharField(
        max_length=100,
        label="Field",
        widget=forms.TextInput(attrs={"list": "rule-fields", "autocomplete": "off"}),
    )
    operator = forms.ChoiceField(choices=OPERATOR_CHOICES, label="Operator")
    value = forms.CharField(
        required=False,
        label="Value",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    description = forms.CharField(max_length=200, required=False, label="Description")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        data["parsed_value"] = parse_value(data["operator"], data.get("value", ""))
        try:
            engine.validate_rule(data["field"].strip(), data["operator"], data["parsed_value"])
        except engine.RuleValidationError as exc:
            for name, message in exc.errors.items():
                self.add_error(name if name in self.fields else None, message)
        return data

    def rule(self) -> RuleInput:
        data = self.cleaned_data
        return RuleInput(
            field=data["field"].strip(),
            operator=data["operator"],
            value=data["parsed_value"],
            enabled=data["enabled"],
            description=data.get("description", ""),
            id=data.get("id"),
        )


class BaseRuleFormSet(forms.BaseFormSet):
    def __init__(self, *args: Any, category: Category, **kwargs: Any):
        self.category = category
        super().__init__(*args, **kwargs)

    def clean(self) -> None:
        if any(self.errors):
            return
        own = set(self.category.rules.values_list("pk", flat=True))
        for form in self.forms:
            if self._should_delete_form(form):
                continue
            rule_id = form.cleaned_data.get("id")
            if rule_id is not None and rule_id not in own:
                form.add_error(None, "This rule belongs to another category; reload the page.")

    def rules(self) -> list[RuleInput]:
        """The kept rules in the admin's order (ORDER, then position)."""
        return [form.rule() for form in self.ordered_forms]


RuleFormSet = forms.formset_factory(
    RuleForm, formset=BaseRuleFormSet, extra=0, can_delete=True, can_order=True
)


def rule_initial(rule: EscalationRule, order: int) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "enabled": rule.enabled,
        "field": rule.field,
        "operator": rule.operator,
        "value": value_for_input(rule.value),
        "description": rule.description,
        "ORDER": order,
    }


class QueueForm(forms.ModelForm):
    class Meta:
        model = Queue
        fields = [
            "name",
            "slug",
            "next_queue",
            "members",
            "chat_webhook_url",
            "slack_channel",
            "slack_direct_messages",
            "email_links",
        ]
        labels = {
            "next_queue": "Escalates to",
            "chat_webhook_url": "Chat webhook URL",
            "slack_channel": "Slack channel ID",
            "slack_direct_messages": "Slack direct message to the assignee, with the buttons",
            "email_links": "One-tap Approve and Reject links in assignment and reminder emails",
        }
        widgets = {"members": forms.CheckboxSelectMultiple}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        people = get_user_model().objects.filter(
            Q(groups__name__in=[REVIEWERS, ADMINS]) | Q(pk__in=self._current_members())
        )
        self.fields["members"].queryset = people.distinct().order_by("username")
        self.fields["members"].label_from_instance = lambda u: (
            f"{u.get_full_name()} ({u.get_username()})" if u.get_full_name() else u.get_username()
        )
        others = Queue.objects.all()
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        self.fields["next_queue"].queryset = others
        self.fields["next_queue"].empty_label = "Nowhere: the final fallback applies"

    def clean_slack_channel(self) -> str:
        # Slack's API takes the channel's ID; a name (#refunds) would fail on every post.
        channel = self.cleaned_data["slack_channel"].strip()
        if channel and not SLACK_CHANNEL_ID.fullmatch(channel):
            raise forms.ValidationError(
                "Use the channel's ID (C… or G…, in Slack under the channel's details), "
                "not its name."
            )
        return channel

    def _current_members(self) -> list[int]:
        if not self.instance.pk:
            return []
        return list(self.instance.members.values_list("pk", flat=True))


class AwayForm(forms.Form):
    """When a reviewer is back: set by the reviewer on the away page, or by an admin on the
    queues page (one form per reviewer there, told apart by a prefix)."""

    until = forms.DateTimeField(
        label="Away until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        help_text="Your time zone: " + settings.TIME_ZONE,
    )

    def clean_until(self) -> datetime:
        until = self.cleaned_data["until"]
        now = timezone.now()
        if until <= now:
            raise forms.ValidationError("Pick a time in the future.")
        if until > now + timedelta(days=366):
            raise forms.ValidationError("At most a year ahead.")
        return until


class AgentForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = ["name", "webhook_url", "is_active"]
        labels = {"webhook_url": "Webhook URL", "is_active": "Active (may call the API)"}
        help_texts = {"webhook_url": "Decisions are POSTed here, signed with the agent's secret."}


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        required=False,
        label="Token name",
        help_text="Where it will be used, e.g. 'production' or 'staging'.",
    )
