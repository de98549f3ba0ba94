"""Schemathesis on the reviewer API with a reviewer's token: requests generated from the
OpenAPI schema never make it fail (5xx) nor answer outside the schema, and requests that break
the schema (wrong types, NUL bytes, missing fields) are refused with a 4xx. Path ids point at a
pending request of the reviewer's queue, so every endpoint's own code runs."""

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hitl.wsgi import application
from reviews.models import ReviewerToken
from reviews.services.submission import submit_request

from .api_support import _no_rate_limit, escalated
from .test_api_schema import RAW_SCHEMA, _wsgi_host

__all__ = ["_no_rate_limit", "_wsgi_host"]

pytestmark = pytest.mark.django_db

REVIEWER_PATHS = "^/api/v1/reviewer/"
schema = schemathesis.openapi.from_dict(RAW_SCHEMA).include(path_regex=REVIEWER_PATHS)
schema.app = application

negative_config = SchemathesisConfig()
negative_config.projects.default.generation.update(modes=[GenerationMode.NEGATIVE], allow_x00=True)
negative_schema = schemathesis.openapi.from_dict(RAW_SCHEMA, config=negative_config).include(
    path_regex=REVIEWER_PATHS
)
negative_schema.app = application


@pytest.fixture
def reviewer_token(alice) -> str:
    return ReviewerToken.issue(alice, "fuzz")[1]


@pytest.fixture
def pending_id(agent, refunds) -> str:
    # Through the service: see tests/test_api_schema.py's pending_id.
    fields = {k: v for k, v in escalated().items() if k != "category"}
    return str(submit_request(agent, category=refunds, **fields).request.public_id)


def aim_at(case, pending_id: str) -> None:
    """A well-formed request id becomes the reviewer's pending request (else every call on
    one is a 404)."""
    params = case.path_parameters or {}
    try:
        uuid.UUID(str(params.get("request_id")))
    except ValueError:
        pass
    else:
        params["request_id"] = pending_id


@schema.parametrize()
@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_no_generated_request_makes_the_reviewer_api_fail_or_break_its_schema(
    case, reviewer_token, pending_id
):
    aim_at(case, pending_id)
    response = case.call(headers={"Authorization": f"Bearer {reviewer_token}"})
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


@negative_schema.parametrize()
@hypothesis_settings(
    max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_requests_that_break_the_schema_never_make_the_reviewer_api_fail(
    case, reviewer_token, pending_id
):
    aim_at(case, pending_id)
    response = case.call(headers={"Authorization": f"Bearer {reviewer_token}"})
    case.validate_response(response, checks=[not_a_server_error])
