"""Django admin for every model, with no unaudited write: each model's admin either calls the
audited service for its writes, audits adds, changes and deletes in the admin's own
transaction (AuditedAdmin), or is read-only."""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin as AxesAccessAttemptAdmin
from axes.admin import AccessFailureLogAdmin as AxesAccessFailureLogAdmin
from axes.admin import AccessLogAdmin as AxesAccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.views.decorators.http import require_POST

from . import logins
from . import rules as engine
from .models import (
    ActionLink,
    Agent,
    AgentToken,
    AuditEvent,
    Category,
    CategoryAutonomy,
    DailyRollup,
    Decision,
    EscalationRule,
    FourEyesStep,
    GroupTally,
    Guideline,
    Heartbeat,
    Hold,
    KnownAnswerCheck,
    KnownAnswerSource,
    Message,
    Notification,
    PendingTally,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    PolicyVersion,
    PushSubscription,
    Queue,
    RequestSighting,
    Retention,
    Reversal,
    ReviewerProfile,
    ReviewerRollup,
    ReviewerToken,
    ReviewRequest,
    RollupCursor,
    SecondReview,
    SlackMessage,
    SubmissionRollup,
    SweepRun,
    WebhookDelivery,
)
from .policy_forms import CategoryAdminForm
from .services import outbox
from .services.assignment import set_away
from .services.audit import admin_snapshot, record_admin_write
from .services.policies import record_outside_change
from .services.setup import (
    issue_agent_token,
    revoke_agent_token,
    revoke_reviewer_token,
    rotate_webhook_secret,
    save_queue,
)


def _inline_changes(formsets: list[Any]) -> list[dict[str, Any]]:
    """What the change form's inline rows added, changed and deleted (set once they are saved)."""
    changes = []
    for formset in formsets:
        added = [admin_snapshot(obj) for obj in getattr(formset, "new_objects", [])]
        changed = [
            {"row": str(obj), "fields": sorted(fields), "now": admin_snapshot(obj)}
            for obj, fields in getattr(formset, "changed_objects", [])
        ]
        deleted = [str(obj) for obj in getattr(formset, "deleted_objects", [])]
        if added or changed or deleted:
            changes.append(
                {
                    "model": formset.model._meta.label_lower,
                    "added": added,
                    "changed": changed,
                    "deleted": deleted,
                }
            )
    return changes


class AuditedAdmin(admin.ModelAdmin):
    """Each add, change (inline rows included) and delete writes admin.added, admin.changed or
    admin.deleted with the row before and after. Django runs the change form and the delete
    view inside transaction.atomic, so the write and its event commit together."""

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        if change:
            stored = type(obj)._default_manager.get(pk=obj.pk)
            obj._audit_before = admin_snapshot(stored)  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        after = admin_snapshot(form.instance)
        if inlines := _inline_changes(formsets):
            after["inlines"] = inlines
        record_admin_write(
            "changed" if change else "added",
            form.instance,
            by=request.user,
            before=getattr(form.instance, "_audit_before", None),
            after=after,
        )

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        with transaction.atomic():
            before = admin_snapshot(obj)
            record_admin_write("deleted", obj, by=request.user, before=before)
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        # The bulk "Delete selected" action; unlike the delete view it runs outside a
        # transaction of Django's, hence this one.
        with transaction.atomic():
            for obj in queryset:
                before = admin_snapshot(obj)
                record_admin_write("deleted", obj, by=request.user, before=before)
            super().delete_queryset(request, queryset)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Queue)
class QueueAdmin(AuditedAdmin):
    """Saved by save_queue (queue.saved, members included), as the queue page does."""

    list_display = ["name", "slug", "next_queue", "member_count"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]

    def save_model(self, request: HttpRequest, obj: Queue, form: Any, change: bool) -> None:
        save_queue(form, by=request.user)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # save_queue saved the members with its audit event; a queue has no inline rows

    @admin.display(description="members")
    def member_count(self, obj: Queue) -> int:
        return obj.members.count()


class RuleInline(admin.TabularInline):
    model = EscalationRule
    extra = 0
    fields = ["order", "field", "operator", "value", "enabled", "description"]


@admin.register(Category)
class CategoryAdmin(AuditedAdmin):
    form = CategoryAdminForm
    list_display = [
        "name",
        "slug",
        "mode",
        "reversibility",
        "blast_radius",
        "queue",
        "timeout_seconds",
        "timeout_action",
        "answer_timeout_seconds",
        "answer_timeout_action",
        "sample_rate",
        "second_review_rate",
    ]
    list_filter = ["mode", "reversibility", "blast_radius", "queue"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [RuleInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Autonomy is switched on the autonomy page, which checks the evidence and records why.
        return ["mode"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Category, form: Any, change: bool) -> None:
        # A category created autonomous here starts its monitoring (reviews.monitoring).
        obj.changed_by = request.user  # type: ignore[attr-defined]
        obj.change_note = "Created in Django admin."  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if change:  # keep the policy history true when it is edited here too
            record_outside_change(form.instance, by=request.user, note="Edited in Django admin.")


@admin.register(EscalationRule)
class EscalationRuleAdmin(AuditedAdmin):
    list_display = ["summary", "category", "order", "enabled", "description"]
    list_filter = ["enabled", "category"]

    @admin.display(description="rule")
    def summary(self, obj: EscalationRule) -> str:
        return engine.rule_summary(obj)


class TokenInline(admin.TabularInline):
    model = AgentToken
    extra = 0
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Agent)
class AgentAdmin(AuditedAdmin):
    list_display = ["name", "owner", "is_active", "webhook_url", "created_at"]
    list_filter = ["is_active"]
    inlines = [TokenInline]
    actions = ["issue_token", "rotate_webhook_secret"]
    readonly_fields = ["webhook_secret_rotated_at"]

    @admin.action(description="Issue a new API token (shown once)")
    def issue_token(self, request: HttpRequest, queryset: QuerySet[Agent]) -> HttpResponse:
        name = f"admin {timezone.now():%Y-%m-%d %H:%M}"
        issued = [(agent, issue_agent_token(agent, name, by=request.user)[1]) for agent in queryset]
        # The raw value goes in this one response (never cached: admin views send no-store),
        # never in a message (a cookie) or a log.
        return TemplateResponse(
            request,
            "admin/reviews/agent/issued_tokens.html",
            {
                **self.admin_site.each_context(request),
                "title": "New API tokens",
                "opts": self.model._meta,
                "issued": issued,
            },
        )

    @admin.action(description="Rotate the webhook secret (the old one signs too for a while)")
    def rotate_webhook_secret(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        for agent in queryset:
            rotate_webhook_secret(agent, by=request.user)
        hours = settings.HITL_WEBHOOK_SECRET_OVERLAP_HOURS
        self.message_user(
            request,
            f"Rotated {len(queryset)} webhook secrets; the old ones also sign for {hours} h.",
        )


@admin.register(AgentToken)
class AgentTokenAdmin(admin.ModelAdmin):
    list_display = ["agent", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["agent"]
    readonly_fields = ["agent", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # issue tokens from the agent page, so the raw value is shown once

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # nothing to edit: revoke instead

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a revoked token stays on record

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[AgentToken]) -> None:
        tokens = list(queryset.select_related("agent"))
        for token in tokens:
            revoke_agent_token(token, by=request.user)
        self.message_user(request, f"Revoked {len(tokens)} token(s).")


@admin.register(ReviewerProfile)
class ReviewerProfileAdmin(AuditedAdmin):
    """Away status is set by set_away (reviewer.away / reviewer.back)."""

    list_display = ["user", "away_until"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["user"] if obj is not None else []

    def save_model(
        self, request: HttpRequest, obj: ReviewerProfile, form: Any, change: bool
    ) -> None:
        profile = set_away(obj.user, obj.away_until, by=request.user)
        obj.pk = profile.pk

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # set_away wrote the only field and its audit event


class DecisionInline(admin.StackedInline):
    model = Decision
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in Decision._meta.fields]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    readonly_fields = ["author_kind", "author", "kind", "body", "payload", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReviewRequest)
class ReviewRequestAdmin(admin.ModelAdmin):
    """Read-only: decisions are made in the inbox or through the service, never by editing."""

    list_display = [
        "id",
        "title",
        "category",
        "status",
        "assignee",
        "priority",
        "deadline",
        "created_at",
    ]
    list_filter = ["status", "category", "queue", "agent"]
    search_fields = ["title", "public_id", "external_ref", "idempotency_key"]
    list_select_related = ["category", "assignee"]
    readonly_fields = [f.name for f in ReviewRequest._meta.fields]
    inlines = [DecisionInline, MessageInline]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = [
        "request", "outcome", "responded", "decided_by", "channel", "review_seconds", "created_at"
    ]  # fmt: skip
    list_filter = ["outcome", "responded", "channel"]
    list_select_related = ["request", "decided_by"]


@admin.register(Reversal)
class ReversalAdmin(ReadOnlyAdmin):
    """Made through the Reverse page only (services/reversals.py), so the agent is told."""

    list_display = ["request", "agent", "reversed_by", "created_at"]
    search_fields = ["reason", "correction"]
    list_select_related = ["request", "agent", "reversed_by"]


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    """Started and ended on the holds page or the oversight API only (services/hold_control.py),
    so each is audited and every process obeys it within a second."""

    list_display = ["level", "scope", "agent", "category", "started_by", "started_at", "ended_at"]
    list_filter = ["level", "scope"]
    search_fields = ["reason", "end_reason"]
    list_select_related = ["agent", "category", "started_by"]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["request", "author_kind", "kind", "created_at"]
    list_filter = ["author_kind", "kind"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "verb", "request"]
    list_filter = ["verb"]
    search_fields = ["actor_label", "verb", "note"]
    list_select_related = ["request"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OutboxAdmin(admin.ModelAdmin):
    """A record of what was sent. Re-send (the action, or the button on a row's page) is the
    one thing to do with it: the outbox queues it again from its first attempt, audited."""

    actions = ["resend"]
    change_form_template = "admin/reviews/outbox_change_form.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def may_resend(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"reviews.change_{self.opts.model_name}")

    @admin.action(description="Re-send selected %(verbose_name_plural)s", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        count = outbox.resend(self.model, ids, by=request.user)
        self.message_user(request, f"Queued {count} for re-sending.")

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return self.may_resend(request)

    def get_urls(self) -> list[URLPattern]:
        resend_one = self.admin_site.admin_view(require_POST(self.resend_one))
        name = f"{self.opts.app_label}_{self.opts.model_name}_resend"
        return [path("<int:pk>/resend/", resend_one, name=name), *super().get_urls()]

    def resend_one(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The Re-send button on a row's page."""
        row = get_object_or_404(self.model, pk=pk)
        if not self.may_resend(request):
            raise PermissionDenied
        outbox.resend(self.model, [row.pk], by=request.user)
        self.message_user(request, f"Queued the {self.opts.verbose_name} for re-sending.")
        return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", row.pk)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OutboxAdmin):
    list_display = [
        "id",
        "agent",
        "event",
        "url",
        "state",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["state", "event", "agent"]


@admin.register(Guideline)
class GuidelineAdmin(AuditedAdmin):
    list_display = ["text", "category", "is_active", "created_by", "created_at"]
    list_filter = ["category", "is_active"]
    raw_id_fields = ["source_request"]


# --- timeouts, reminders, liveness -------------------------------------------------


@admin.register(Notification)
class NotificationAdmin(OutboxAdmin):
    list_display = ["created_at", "kind", "channel", "target", "request", "state", "attempts"]
    list_filter = ["state", "kind", "channel"]
    search_fields = ["target", "subject"]


@admin.register(ReviewerToken)
class ReviewerTokenAdmin(ReadOnlyAdmin):
    """Issued and revoked by the reviewer on their Channels page, so the raw value is shown
    once to them alone."""

    list_display = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ReviewerToken]) -> None:
        active = list(queryset.filter(revoked_at=None).select_related("user"))
        for token in active:
            revoke_reviewer_token(token, by=request.user)
        self.message_user(request, f"Revoked {len(active)} tokens; calls with them now fail.")


@admin.register(SlackMessage)
class SlackMessageAdmin(ReadOnlyAdmin):
    list_display = ["request", "channel", "ts", "shows_status", "posted_at", "updated_at"]


@admin.register(ActionLink)
class ActionLinkAdmin(ReadOnlyAdmin):
    list_display = ["request", "user", "verb", "proposal_version", "expires_at", "used_at"]
    exclude = ["token_hash"]


@admin.register(PushSubscription)
class PushSubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["user", "user_agent", "created_at", "last_success_at"]


@admin.register(SweepRun)
class SweepRunAdmin(ReadOnlyAdmin):
    list_display = [
        "started_at",
        "finished_at",
        "batches",
        "decided",
        "reassigned",
        "escalated",
        "handed_over",
        "reminders",
        "skipped",
    ]


# Written by services/known_answers.py, audited there; the queue's page changes them.
@admin.register(KnownAnswerSource)
class KnownAnswerSourceAdmin(ReadOnlyAdmin):
    list_display = ["request", "outcome", "marked_by", "created_at"]


@admin.register(KnownAnswerCheck)
class KnownAnswerCheckAdmin(ReadOnlyAdmin):
    list_display = ["request", "source", "queue", "expected", "reviewer", "outcome", "caught"]


# Kept by the database's triggers; `manage.py check_tallies --repair` recounts them.
@admin.register(PendingTally)
class PendingTallyAdmin(ReadOnlyAdmin):
    list_display = ["queue_id", "assignee_id", "slot", "n"]


@admin.register(GroupTally)
class GroupTallyAdmin(ReadOnlyAdmin):
    list_display = ["queue_id", "group_key", "n", "sample_id"]


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "seen_at"]


@admin.register(PolicyVersion)
class PolicyVersionAdmin(ReadOnlyAdmin):
    """History is written by the policy editor; restore a version there."""

    list_display = ["category", "number", "created_by", "created_at", "note"]
    list_filter = ["category"]
    list_select_related = ["category", "created_by"]


# --- metrics and the feedback loop ----------------------------------------------


@admin.register(DailyRollup)
class DailyRollupAdmin(ReadOnlyAdmin):
    """Derived data: `manage.py rebuild_rollups` recreates it."""

    list_display = ["day", "category", "agent", "rule_id", "total", "approved", "modified"]
    list_filter = ["category", "agent"]
    date_hierarchy = "day"


@admin.register(ReviewerRollup)
class ReviewerRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "reviewer",
        "category",
        "decided",
        "approved",
        "rejected",
        "batched",
        "unopened",
    ]
    list_filter = ["category"]


@admin.register(RequestSighting)
class RequestSightingAdmin(ReadOnlyAdmin):
    """When each reviewer first saw and opened a request: what review times count from."""

    list_display = ["request", "reviewer", "first_seen_at", "opened_at"]
    raw_id_fields = ["request"]


@admin.register(SubmissionRollup)
class SubmissionRollupAdmin(ReadOnlyAdmin):
    """Derived data: `manage.py rebuild_rollups` recreates it."""

    list_display = ["day", "category", "agent", "submitted", "escalated"]
    list_filter = ["category", "agent"]
    date_hierarchy = "day"


@admin.register(RollupCursor)
class RollupCursorAdmin(ReadOnlyAdmin):
    list_display = ["name", "last_id", "last_run_at"]


@admin.register(CategoryAutonomy)
class CategoryAutonomyAdmin(AuditedAdmin):
    """The bar and sample size are editable; switching modes happens on the autonomy page."""

    list_display = ["category", "bar", "min_sample", "autonomous_since", "reinstated_at"]
    fields = ["category", "bar", "min_sample", "autonomous_since", "switched_by", "reason",
              "reinstated_at", "reinstated_reason"]  # fmt: skip
    readonly_fields = ["autonomous_since", "switched_by", "reason", "reinstated_at",
                       "reinstated_reason"]  # fmt: skip


class PeriodicReviewItemInline(admin.TabularInline):
    model = PeriodicReviewItem
    extra = 0
    can_delete = False
    fields = ["request", "verdict", "correction", "reviewed_by", "reviewed_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PeriodicReviewBatch)
class PeriodicReviewBatchAdmin(ReadOnlyAdmin):
    list_display = ["category", "day", "created_at", "completed_at"]
    list_filter = ["category"]
    inlines = [PeriodicReviewItemInline]


@admin.register(PeriodicReviewItem)
class PeriodicReviewItemAdmin(ReadOnlyAdmin):
    list_display = ["request", "batch", "verdict", "reviewed_by", "reviewed_at"]
    list_filter = ["verdict"]
    raw_id_fields = ["request"]


@admin.register(Retention)
class RetentionAdmin(ReadOnlyAdmin):
    """The period the database enforces, written from HITL_RETENTION_DAYS by `migrate`."""

    list_display = ["days", "applied_at"]


@admin.register(SecondReview)
class SecondReviewAdmin(ReadOnlyAdmin):
    """Blind second opinions are measurements: readable here, changed only by their reviewer."""

    list_display = ["request", "category", "first_reviewer", "first_outcome", "reviewer",
                    "outcome", "agrees", "actions_match", "decided_at"]  # fmt: skip
    list_filter = ["category", "agrees", "outcome"]
    raw_id_fields = ["request", "decision"]


@admin.register(FourEyesStep)
class FourEyesStepAdmin(ReadOnlyAdmin):
    """Four-eyes steps are part of a decision's record: readable here, written only by the
    decision service (services.four_eyes)."""

    list_display = ["request", "proposal_version", "role", "by", "outcome", "agrees", "channel",
                    "created_at"]  # fmt: skip
    list_filter = ["role", "outcome", "agrees"]
    raw_id_fields = ["request", "decision"]


# --- login throttling (django-axes) ------------------------------------------------------


@admin.register(AccessAttempt)
class AccessAttemptAdmin(AxesAccessAttemptAdmin):
    """Failed logins still counting; deleting them is the unlock, audited as login.unlocked."""

    actions = ["unlock"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Unlock: clear the selected failed logins")
    def unlock(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        count = logins.unlock_logins(queryset, by=request.user)
        self.message_user(request, f"Cleared {count} failed-login record(s).")

    def delete_model(self, request: HttpRequest, obj: AccessAttempt) -> None:
        logins.unlock_logins(AccessAttempt.objects.filter(pk=obj.pk), by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        logins.unlock_logins(queryset, by=request.user)


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAdmin, AxesAccessLogAdmin):
    pass


@admin.register(AccessFailureLog)
class AccessFailureLogAdmin(ReadOnlyAdmin, AxesAccessFailureLogAdmin):
    pass


# --- people (django.contrib.auth) --------------------------------------------------------
# Who is an admin, a reviewer or a manager is a group membership: an auditor cares who
# changed it, so users and groups are audited like everything else.

User = get_user_model()
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(AuditedAdmin, DjangoUserAdmin):
    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        with transaction.atomic():
            user = self.get_object(request, unquote(id))
            before = user.password if user is not None else None
            response = super().user_change_password(request, id, form_url)
            if user is not None:
                user.refresh_from_db(fields=["password"])
                if user.password != before:
                    record_admin_write(
                        "password_changed",
                        user,
                        by=request.user,
                        before={"username": user.get_username()},
                        after={"usable_password": user.has_usable_password()},
                    )
        return response


@admin.register(Group)
class GroupAdmin(AuditedAdmin, DjangoGroupAdmin):
    pass
