"""ASGI entry point: what the Procfile's web process serves (gunicorn with uvicorn workers).

Django's views run as under WSGI, on a pool of WEB_THREADS threads (a2wsgi), so every view,
middleware and streamed export behaves as it does under gunicorn's threads; agents' waits go
through reviews.wait_door, which parks them without a thread or a database connection each.
Django's own ASGI handler would give every request a thread of its own for the length of a
wait (its sync middleware runs in a per-request thread), which is what this avoids.
"""

import os

from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")
django_app = get_wsgi_application()

from reviews.wait_door import WaitDoor  # noqa: E402 (Django is set up above)

application = WaitDoor(WSGIMiddleware(django_app, workers=settings.WEB_THREADS))
