"""A reviewer's devices for Web Push, from the push section of their Channels page: the page's
script subscribes the browser and posts the subscription here; removing a device and the test
message are plain forms."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from ..access import REVIEWERS, role_required
from ..channels import push
from ..services import push_devices

# A browser's subscription JSON is a few hundred bytes (the endpoint up to 2000 characters).
MAX_BODY_BYTES = 4096


@require_POST
@role_required(REVIEWERS)
def subscribe(request: HttpRequest) -> JsonResponse:
    if not push.enabled():
        return _refused("Web Push is not set up on this server.", 409)
    if len(request.body) > MAX_BODY_BYTES:
        return _refused(f"The subscription must be at most {MAX_BODY_BYTES} bytes.", 413)
    try:
        data = json.loads(request.body, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _refused("Send the subscription as JSON.")
    try:
        subscription = push.parse_subscription(data)
        device, created = push_devices.add_device(
            request.user, subscription, request.headers.get("User-Agent", "")
        )
    except push.BadSubscription as exc:
        return _refused(str(exc))
    except push_devices.DeviceRefused as exc:
        return _refused(str(exc), exc.status)
    return JsonResponse(
        {"id": device.pk, "device": push.describe_device(device.user_agent)},
        status=201 if created else 200,
    )


@require_POST
@role_required(REVIEWERS)
def remove(request: HttpRequest, pk: int) -> HttpResponse:
    device = push_devices.remove_device(request.user, pk)
    messages.success(request, f"{push.describe_device(device.user_agent)} gets no more pushes.")
    return redirect(reverse("my_channels") + "#push")


@require_POST
@role_required(REVIEWERS)
def test(request: HttpRequest) -> HttpResponse:
    if not push.enabled():
        messages.error(request, "Web Push is not set up on this server.")
        return redirect(reverse("my_channels") + "#push")
    result = push_devices.send_test(request.user)
    if result.sent:
        count = f"{result.sent} device{'s' if result.sent != 1 else ''}"
        messages.success(request, f"Test notification sent to {count}.")
    for failure in result.failures:
        messages.error(request, f"Not delivered to {failure}")
    if not result.sent and not result.failures:
        messages.info(request, "No device of yours is subscribed yet.")
    return redirect(reverse("my_channels") + "#push")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _refused(detail: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": "refused", "detail": detail}, status=status)
