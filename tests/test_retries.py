"""A service that PostgreSQL aborts as a deadlock's victim (or on a serialization failure) is
run again, a bounded number of times, when it is the outermost transaction; other errors,
and victims inside a caller's transaction, reach the caller unchanged."""

import pytest
from django.db import OperationalError, connection, transaction

from reviews.services.retries import ATTEMPTS, retried

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def refused(sqlstate: str) -> None:
    """Have PostgreSQL itself raise the error it raises for `sqlstate`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DO $$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '{sqlstate}'; END $$"
        )


def failing(times: int, sqlstate: str):
    calls: list[int] = []

    @retried
    def service() -> int:
        calls.append(1)
        with transaction.atomic():
            if len(calls) <= times:
                refused(sqlstate)
        return len(calls)

    return service, calls


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_victim_is_run_again_until_it_succeeds(sqlstate):
    service, _ = failing(ATTEMPTS - 1, sqlstate)
    assert service() == ATTEMPTS


def test_a_victim_gives_up_after_a_bounded_number_of_attempts():
    service, calls = failing(ATTEMPTS, "40P01")
    with pytest.raises(OperationalError):
        service()
    assert len(calls) == ATTEMPTS


def test_other_errors_are_not_retried():
    service, calls = failing(1, "55P03")  # lock_not_available
    with pytest.raises(OperationalError):
        service()
    assert len(calls) == 1


def test_inside_a_callers_transaction_the_caller_retries():
    service, calls = failing(1, "40P01")
    with pytest.raises(OperationalError), transaction.atomic():
        service()
    assert len(calls) == 1
