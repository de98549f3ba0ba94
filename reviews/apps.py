from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from . import logins, rulebook  # noqa: F401  (connect their signal receivers)
        from .services import autonomy  # noqa: F401  (starts and ends monitoring periods)
