"""Human-facing pages. Each block belongs to one area's view module."""

from django.urls import path

from .views import (
    app_shell,
    audit,
    away,
    batch,
    email_links,
    guidelines,
    home,
    inbox,
    metrics,
    my_channels,
    periodic_reviews,
    policies,
    push,
    second_reviews,
    slack,
    status,
)

urlpatterns = [
    path("", home.start, name="start"),
    # --- reviewer inbox -------------------------------------------------------------------
    path("inbox/", inbox.inbox, name="inbox"),
    path("inbox/poll/", inbox.poll, name="inbox_poll"),
    path("inbox/batch/", batch.batch, name="inbox_batch"),
    path("inbox/group/<slug:key>/", inbox.group, name="inbox_group"),
    path("inbox/second/<int:pk>/", second_reviews.second_item, name="inbox_second"),
    path("inbox/second/<int:pk>/decide/", second_reviews.second_decide, name="inbox_second_decide"),
    path(
        "inbox/periodic-review/<int:batch_id>/",
        periodic_reviews.periodic_review_batch,
        name="inbox_periodic_review_batch",
    ),
    path("inbox/<int:pk>/", inbox.item, name="inbox_item"),
    path("inbox/<int:pk>/raw.json", inbox.item_raw, name="inbox_item_raw"),
    path("inbox/<int:pk>/decide/", inbox.decide, name="inbox_decide"),
    path("inbox/<int:pk>/shown/", inbox.shown, name="inbox_shown"),
    path("inbox/<int:pk>/undo/", inbox.undo, name="inbox_undo"),
    path("inbox/batch/<uuid:batch_id>/undo/", batch.undo_batch, name="inbox_undo_batch"),
    path("inbox/<int:pk>/reply/", inbox.reply, name="inbox_reply"),
    # --- admin policies -------------------------------------------------------------------
    path("policies/", policies.policy_list, name="policies"),
    path("policies/queues/", policies.queue_list, name="queues"),
    path("policies/queues/<int:pk>/", policies.queue_edit, name="queue_edit"),
    path("policies/reviewers/<int:user_id>/away/", policies.reviewer_away, name="reviewer_away"),
    path("policies/agents/", policies.agent_list, name="agents"),
    path("policies/agents/<int:pk>/", policies.agent_detail, name="agent_detail"),
    path("policies/agents/<int:pk>/tokens/", policies.agent_token_issue, name="agent_token_issue"),
    path(
        "policies/agents/<int:pk>/tokens/<int:token_id>/revoke/",
        policies.agent_token_revoke,
        name="agent_token_revoke",
    ),
    path(
        "policies/agents/<int:pk>/webhook-secret/rotate/",
        policies.agent_webhook_secret_rotate,
        name="agent_webhook_secret_rotate",
    ),
    path("policies/<slug:slug>/edit/", policies.policy_edit, name="policy_edit"),
    path("policies/<slug:slug>/versions/", policies.policy_versions, name="policy_versions"),
    path(
        "policies/<slug:slug>/versions/<int:number>/restore/",
        policies.policy_restore,
        name="policy_restore",
    ),
    # --- manager metrics ------------------------------------------------------------------
    path("metrics/", metrics.overview, name="metrics"),
    path("metrics/calibration/", metrics.calibration, name="metrics_calibration"),
    path("metrics/advice/", metrics.advice, name="metrics_advice"),
    path("metrics/patterns/", metrics.patterns, name="metrics_patterns"),
    path("metrics/reviewers/", metrics.reviewers, name="metrics_reviewers"),
    path("metrics/autonomy/", metrics.autonomy, name="metrics_autonomy"),
    path("metrics/agreement/", metrics.agreement, name="metrics_agreement"),
    path(
        "metrics/autonomy/<int:category_id>/switch/",
        metrics.autonomy_switch,
        name="metrics_autonomy_switch",
    ),
    path("metrics/export/decisions/", metrics.export_decisions, name="metrics_export"),
    path("audit/", audit.audit_log, name="audit"),
    path("audit/export/", audit.audit_export, name="audit_export"),
    path("audit/requests/<int:request_id>/", audit.request_history, name="audit_request"),
    path("periodic-review/", periodic_reviews.batch_list, name="periodic_reviews"),
    path(
        "periodic-review/<int:batch_id>/",
        periodic_reviews.batch_detail,
        name="periodic_review_batch",
    ),
    path(
        "periodic-review/items/<int:item_id>/",
        periodic_reviews.verdict,
        name="periodic_review_verdict",
    ),
    path("requests/<int:request_id>/guideline/", guidelines.new_guideline, name="guideline_new"),
    # --- operations status ----------------------------------------------------------------
    path("status/", status.status, name="status"),
    path("health/", status.health, name="health"),
    path("away/", away.away, name="away"),
    # --- a reviewer's channels (Slack, phone, reviewer API) --------------------------------
    path("me/channels/", my_channels.my_channels, name="my_channels"),
    path("me/channels/slack/unlink/", slack.unlink, name="slack_unlink"),
    path("me/channels/tokens/", my_channels.token_issue, name="my_token_issue"),
    path(
        "me/channels/tokens/<int:token_id>/revoke/",
        my_channels.token_revoke,
        name="my_token_revoke",
    ),
    # --- one-tap email links: the link is the credential, no login ------------------------
    path("email/decide/<str:token>/", email_links.confirm, name="email_link"),
    path("email/decide/<str:token>/undo/", email_links.undo, name="email_link_undo"),
    # --- Slack: its buttons and modals post here; a reviewer links their member -----------
    path("slack/interactions/", slack.interactions, name="slack_interactions"),
    path("slack/link/<str:token>/", slack.link, name="slack_link"),
    path("me/push/subscriptions/", push.subscribe, name="push_subscribe"),
    path("me/push/subscriptions/<int:pk>/remove/", push.remove, name="push_remove"),
    path("me/push/test/", push.test, name="push_test"),
    # --- the installable app (manifest, service worker, offline page) ----------------------
    path("sw.js", app_shell.service_worker, name="service_worker"),
    path("manifest.webmanifest", app_shell.manifest, name="manifest"),
    path("offline/", app_shell.offline, name="offline"),
]
