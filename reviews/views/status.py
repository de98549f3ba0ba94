"""Operations status: the timeout sweep, backlog, channels to people, webhooks and liveness."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Min, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ..access import ADMINS, role_required
from ..channel_health import channel_health, refused_interactions
from ..health import liveness
from ..models import OutboxMessage, ReviewRequest, SweepRun, WebhookDelivery

State = OutboxMessage.State


@require_GET
@role_required(ADMINS)
def status(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    day_ago = now - timedelta(days=1)
    # The backlog is agents waiting on people: known-answer checks (no agent waits on them)
    # are counted apart, and no figure or alert here includes them.
    agents = Q(is_check=False)
    overdue = agents & Q(deadline__lte=now)
    backlog = ReviewRequest.objects.filter(status=ReviewRequest.Status.PENDING).aggregate(
        pending=Count("pk", filter=agents),
        overdue=Count("pk", filter=overdue),
        due_soon=Count(
            "pk", filter=agents & Q(deadline__gt=now, deadline__lte=now + timedelta(hours=1))
        ),
        unassigned=Count("pk", filter=agents & Q(assignee__isnull=True)),
        oldest_overdue=Min("deadline", filter=overdue),
        checks=Count("pk", filter=Q(is_check=True)),
    )
    webhooks = WebhookDelivery.objects.aggregate(
        pending=Count("pk", filter=Q(state=State.PENDING)),
        stuck=Count(
            "pk",
            filter=Q(state=State.PENDING, next_attempt_at__lte=now - timedelta(minutes=5)),
        ),
        failed=Count("pk", filter=Q(state=State.FAILED, created_at__gte=day_ago)),
    )
    last_run = SweepRun.objects.first()
    # Most sweeps find nothing to do; list the ones that did something, or never finished.
    runs = list(
        SweepRun.objects.filter(
            Q(batches__gt=0) | Q(reminders__gt=0) | Q(handed_over__gt=0) | Q(finished_at=None)
        )[:10]
    )
    context = {
        "nav_active": "status",
        "now": now,
        "backlog": backlog,
        "channels": channel_health(now),
        "slack_refused": refused_interactions(now),
        "webhooks": webhooks,
        "runs": runs,
        "last_run": last_run,
        "live": liveness(now),
    }
    template = "timeouts/status.html#status-body" if request.htmx else "timeouts/status.html"
    return render(request, template, context)


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitors. No login, and nothing in it but liveness.

    200 "ok"; 200 "degraded" naming the failing parts when the database answers (this web
    process can still take submissions and decisions: Redis, beat and the workers only
    accelerate or catch up); 503 "down" when the database does not."""
    now = timezone.now()
    live = liveness(now)
    status = "ok" if live.ok else ("down" if not live.database.ok else "degraded")
    body = {
        "status": status,
        "failing": live.failing,
        "checks": {name: part.as_dict(now) for name, part in live.parts().items()},
        "time": now.isoformat(),
    }
    return JsonResponse(body, status=503 if status == "down" else 200)
