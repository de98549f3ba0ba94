"""When a reviewer first had a request on screen (a list row) and first opened it: where each
decider's review time starts."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ..models import RequestSighting, ReviewRequest


def record_first_view(
    request: ReviewRequest, *, by: AbstractBaseUser, now: datetime | None = None
) -> None:
    """The reviewer opened the request: start their own review clock (and note that someone
    has looked at it, whoever it was)."""
    now = now or timezone.now()
    # Read first: opening an item again, the usual case, then writes nothing.
    seen = (
        RequestSighting.objects.filter(request_id=request.pk, reviewer=by)
        .values_list("opened_at")
        .first()
    )
    if request.first_viewed_at is not None and seen is not None and seen[0] is not None:
        return
    sightings, requests = RequestSighting._meta.db_table, ReviewRequest._meta.db_table
    writes = []
    if request.first_viewed_at is None:
        writes.append(
            f"UPDATE {requests} SET first_viewed_at = %(now)s"
            " WHERE id = %(request)s AND first_viewed_at IS NULL"
        )
        request.first_viewed_at = now
    if seen is None:
        # If a list render inserted the row meanwhile, keep its first sighting and add the
        # opening.
        writes.append(
            f"INSERT INTO {sightings} (request_id, reviewer_id, first_seen_at, opened_at)"
            " VALUES (%(request)s, %(by)s, %(now)s, %(now)s) ON CONFLICT (request_id, reviewer_id)"
            f" DO UPDATE SET opened_at = EXCLUDED.opened_at WHERE {sightings}.opened_at IS NULL"
        )
    elif seen[0] is None:
        writes.append(
            f"UPDATE {sightings} SET opened_at = %(now)s"
            " WHERE request_id = %(request)s AND reviewer_id = %(by)s AND opened_at IS NULL"
        )
    params = {"request": request.pk, "by": by.pk}
    params["now"] = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        if len(writes) == 1:
            cursor.execute(writes[0], params)
        elif connection.vendor == "postgresql":
            # One statement for both writes on the path of every newly opened item (each
            # decide-and-next): one round trip and one commit instead of four.
            first, last = writes
            cursor.execute(f"WITH viewed AS ({first}) {last}", params)
        else:
            with transaction.atomic(savepoint=False):  # one commit for both writes
                for sql in writes:
                    cursor.execute(sql, params)


def seen_by(user: AbstractBaseUser) -> Exists:
    """Whether `user` has had the request on screen: annotate a list's rows with it."""
    return Exists(RequestSighting.objects.filter(request_id=OuterRef("pk"), reviewer=user))


def record_sightings(
    request_ids: list[int], *, by: AbstractBaseUser, now: datetime | None = None
) -> None:
    """The reviewer has these requests on screen as rows (the inbox list, a group table):
    what a batch's review time counts from. Only a first sighting is kept. The list's poll
    shows the same rows every few seconds: it passes only rows not yet seen (inbox_rows
    reads that along), so a poll usually writes nothing at all."""
    if not request_ids:
        return
    ids = list(dict.fromkeys(request_ids))
    now = now or timezone.now()
    # One statement however many rows (a group table has up to a thousand); a racing render
    # of the same rows conflicts, and the first sighting stands.
    sql = (
        f"INSERT INTO {RequestSighting._meta.db_table} (request_id, reviewer_id, first_seen_at) "
        f"SELECT id, %s, %s FROM {ReviewRequest._meta.db_table} "
        f"WHERE id IN ({', '.join(['%s'] * len(ids))}) "
        "ON CONFLICT (request_id, reviewer_id) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [by.pk, connection.ops.adapt_datetimefield_value(now), *ids])


def review_starts(
    request_ids: list[int], by: AbstractBaseUser | None, batched: bool
) -> dict[int, datetime]:
    """When the decider's review of each request began: for a batch (from the inbox or the
    reviewer API), their first sight of the row (in the list, a group table, or opened); for
    a single decision, from any channel, their opening of it (the inbox's item, the reviewer
    API's read of it). Never a colleague's view: review time belongs to whoever decides."""
    if by is None:
        return {}
    start = "first_seen_at" if batched else "opened_at"
    return dict(
        RequestSighting.objects.filter(
            request_id__in=request_ids, reviewer=by, **{f"{start}__isnull": False}
        ).values_list("request_id", start)
    )


def review_seconds_for(
    starts: dict[int, datetime], request_id: int, batched: bool, now: datetime
) -> float | None:
    """From the decider's review start (review_starts) to the decision. A batch row its
    decider never had on screen was looked at for 0 s. A single decision on a request never
    opened has no known start: None, not a guess."""
    start = starts.get(request_id)
    if start is None:
        return 0.0 if batched else None
    return max((now - start).total_seconds(), 0.0)


def record_first_views(
    request_ids: list[int], *, by: AbstractBaseUser, now: datetime | None = None
) -> None:
    """The reviewer sees these requests laid out together (a group's table): someone has
    looked at each, and this reviewer's batch clock starts (as rows, not opened)."""
    if request_ids:
        now = now or timezone.now()
        with transaction.atomic(savepoint=False):  # one commit for both writes
            ReviewRequest.objects.filter(pk__in=request_ids, first_viewed_at__isnull=True).update(
                first_viewed_at=now
            )
            record_sightings(request_ids, by=by, now=now)
