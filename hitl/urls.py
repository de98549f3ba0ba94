from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from reviews.api import api, ping

admin.site.site_header = "HITL Review administration"
admin.site.site_title = "HITL Review"

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # --- agent API ------------------------------------------------------------------------
    path("api/v1/ping", ping, name="api_ping"),
    path("api/v1/", api.urls),
    # --- pages ----------------------------------------------------------------------------
    path("", include("reviews.urls")),
]

# A database connection error raised anywhere (middleware too) answers 503, not 500.
handler500 = "reviews.middleware.server_error"
