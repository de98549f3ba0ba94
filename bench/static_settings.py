"""The production settings with static files served plainly, for benchmarks that start a
server from a checkout: no collectstatic manifest is needed to render pages (as
`bench.common.throwaway_database` does in-process)."""

from hitl.settings import *  # noqa: F403

STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Served straight from the checkout's static folders by WhiteNoise (DEBUG is off and there is
# no collectstatic), for benchmarks that load pages in a browser.
WHITENOISE_USE_FINDERS = True

# Two servers of one benchmark share a Redis database: each files its cache under a prefix of
# its own, so one never reads the other's counts.
if BENCH_CACHE_PREFIX := env_str("BENCH_CACHE_PREFIX"):  # noqa: F405
    CACHES["default"]["KEY_PREFIX"] = BENCH_CACHE_PREFIX  # noqa: F405
