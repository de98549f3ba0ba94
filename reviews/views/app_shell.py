"""The inbox as an installable web app: its manifest, its service worker and the page shown
offline. None of them carries agent data, so none needs a login."""

from __future__ import annotations

import hashlib
import json

from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

# app.css's --surface (the top bar, so an installed app's status bar runs into it) and --bg.
THEME_COLOR = "#ffffff"
BACKGROUND_COLOR = "#f5f6f8"
ICONS = [
    ("img/icon-192.png", "192x192", "any"),
    ("img/icon-512.png", "512x512", "any"),
    ("img/icon-maskable-512.png", "512x512", "maskable"),
]
# What the service worker keeps, so an installed app opens without a network: the styles,
# scripts and icons every page uses, and the offline page. Nothing else, never agent data.
SHELL_FILES = [
    "css/app.css",
    "django_htmx/htmx-2.min.js",
    "js/bars.js",
    "js/htmx-errors.js",
    "js/inbox.js",
    "js/app-shell.js",
    "img/favicon.svg",
    "img/icon-192.png",
]


def shell_urls() -> list[str]:
    """The shell's URLs as pages name them (hashed names in production)."""
    return [static(name) for name in SHELL_FILES] + [reverse("offline")]


@require_GET
@cache_control(no_cache=True)
def service_worker(request: HttpRequest) -> HttpResponse:
    """static/js/sw.js, served from the root so that its scope is the whole site, with the
    shell's URLs written in: their names change with their content in production, and the
    cache's name changes with them, so a deploy replaces the old shell."""
    path = finders.find("js/sw.js")
    with open(path, encoding="utf-8") as source:
        code = source.read()
    urls = shell_urls()
    version = hashlib.sha256((json.dumps(urls) + code).encode()).hexdigest()[:12]
    head = (
        f"const SHELL_CACHE = {json.dumps('hitl-shell-' + version)};\n"
        f"const SHELL_URLS = {json.dumps(urls)};\n"
        f"const OFFLINE_URL = {json.dumps(reverse('offline'))};\n"
        f"const ICON_URL = {json.dumps(static('img/icon-192.png'))};\n"
    )
    response = HttpResponse(head + code, content_type="application/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    return response


@require_GET
@cache_control(max_age=3600)
def manifest(request: HttpRequest) -> JsonResponse:
    data = {
        "name": "HITL Review",
        "short_name": "Reviews",
        "description": "Decide what AI agents may do: the review inbox.",
        "id": "/inbox/",
        "start_url": "/inbox/",
        "scope": "/",
        "display": "standalone",
        "theme_color": THEME_COLOR,
        "background_color": BACKGROUND_COLOR,
        "icons": [
            {"src": static(name), "sizes": sizes, "type": "image/png", "purpose": purpose}
            for name, sizes, purpose in ICONS
        ],
    }
    return JsonResponse(data, content_type="application/manifest+json")


@require_GET
@cache_control(no_cache=True)
def offline(request: HttpRequest) -> HttpResponse:
    """The page an installed app shows when a page cannot be fetched. It is the same for
    everyone (no name, no CSRF token), since the service worker keeps it."""
    return render(request, "offline.html", {"theme_color": THEME_COLOR})
