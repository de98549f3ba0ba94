from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from . import logins, monitoring, rulebook  # noqa: F401  (connect their signal receivers)
