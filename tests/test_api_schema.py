"""Schemathesis: requests generated from the OpenAPI schema never make the API fail (5xx)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hitl.wsgi import application
from reviews.api import api

from .api_support import _no_rate_limit

__all__ = ["_no_rate_limit"]

pytestmark = pytest.mark.django_db


# The schema the API serves at /api/v1/openapi.json, called in-process through WSGI.
schema = schemathesis.openapi.from_dict(api.get_openapi_schema(path_prefix="/api/v1/"))
schema.app = application


@pytest.fixture(autouse=True)
def _wsgi_host(settings):
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    # Like Django's test client: keep the test's transaction open across WSGI requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_no_generated_request_makes_the_api_fail_or_break_its_schema(case, agent_token, refunds):
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
