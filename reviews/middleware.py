"""Keep the agent API's promise that every error is JSON, also where Django or django-ninja
answer before any API code runs: a path with no endpoint (404) or the wrong method (405)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"
PLAIN_ERRORS = {
    404: ("not_found", "No such endpoint; see /api/v1/docs."),
    405: ("method_not_allowed", "This endpoint does not take {method}; it takes {allow}."),
}


def api_errors_as_json(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        plain = PLAIN_ERRORS.get(response.status_code)
        if (
            plain is None
            or not request.path.startswith(API_PREFIX)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        code, detail = plain
        allow = response.get("Allow", "")
        json_response = JsonResponse(
            {"error": code, "detail": detail.format(method=request.method, allow=allow)},
            status=response.status_code,
        )
        if allow:
            json_response["Allow"] = allow
        return json_response

    return middleware
