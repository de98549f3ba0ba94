"""The production settings with static files served plainly, for benchmarks that start a
server from a checkout: no collectstatic manifest is needed to render pages (as
`bench.common.throwaway_database` does in-process)."""

from hitl.settings import *  # noqa: F403

STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
