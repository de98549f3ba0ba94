"""Schemathesis: requests generated from the OpenAPI schema never make the API fail (5xx), and
requests that break the schema (wrong types, missing fields, NUL bytes) are refused with a 4xx.
Path ids point at a real pending request of the agent, so every endpoint's own code runs."""

import re
import uuid

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
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
from reviews.api import api
from reviews.services.submission import submit_request

from .api_support import _no_rate_limit, escalated

__all__ = ["_no_rate_limit"]

pytestmark = pytest.mark.django_db


# The schema the API serves at /api/v1/openapi.json, called in-process through WSGI.
RAW_SCHEMA = api.get_openapi_schema(path_prefix="/api/v1/")
schema = schemathesis.openapi.from_dict(RAW_SCHEMA)
schema.app = application

negative_config = SchemathesisConfig()
negative_config.projects.default.generation.update(modes=[GenerationMode.NEGATIVE], allow_x00=True)
negative_schema = schemathesis.openapi.from_dict(RAW_SCHEMA, config=negative_config)
negative_schema.app = application


@pytest.fixture(autouse=True)
def _wsgi_host(settings):
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    # Like Django's test client: keep the test's transaction open across WSGI requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def pending_id(agent, refunds) -> str:
    # Through the service, not Django's test client: the client reconnects the signals that
    # _wsgi_host disconnected, and PostgreSQL's connection would then close between calls.
    fields = {k: v for k, v in escalated().items() if k != "category"}
    review = submit_request(agent, category=refunds, **fields).request
    return str(review.public_id)


def aim_at(case, pending_id: str) -> None:
    """A well-formed request id becomes the agent's pending request (else every detail call
    is a 404), and a long-poll answers at once."""
    params = case.path_parameters or {}
    try:
        uuid.UUID(str(params.get("request_id")))
    except ValueError:
        pass
    else:
        params["request_id"] = pending_id
    if case.operation.path.endswith(("/wait", "/interrupts/{request_id}", "/reversals")):
        case.query = case.query if isinstance(case.query, dict) else {}
        # Any timeout the server would read as a number of seconds ("59" in a query string is
        # one) becomes 0: the test's request is invisible to the long-poll watcher, so a wait
        # would last its whole timeout (the reversals feed's too: nothing is reversed). A wrong
        # type ("abc", 1.5, a list) stays, to be refused.
        if re.fullmatch(r"\s*[+-]?\d+\s*", str(case.query.get("timeout", 0))):
            case.query["timeout"] = 0


@schema.parametrize()
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_no_generated_request_makes_the_api_fail_or_break_its_schema(case, agent_token, pending_id):
    aim_at(case, pending_id)
    response = case.call(headers={"Authorization": f"Bearer {agent_token}"})
    # Not positive_data_acceptance: a schema-valid body can still name an unknown category.
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
def test_requests_that_break_the_schema_never_make_the_api_fail(case, agent_token, pending_id):
    # Not negative_data_rejection: unknown query parameters are ignored, as HTTP APIs do.
    aim_at(case, pending_id)
    response = case.call(headers={"Authorization": f"Bearer {agent_token}"})
    case.validate_response(response, checks=[not_a_server_error])
