from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mailcenter import views
from mailcenter.ratelimit import limit_posts

# Public forms: guessing passwords and mail-bombing through "reset password" are throttled.
login_view = limit_posts("login", limit=10, window=15 * 60)(auth_views.LoginView.as_view())
password_reset_view = limit_posts("password-reset", limit=5, window=60 * 60)(
    auth_views.PasswordResetView.as_view()
)

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("accounts/login/", login_view, name="login"),
    path("accounts/password_reset/", password_reset_view, name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("settings/", include("mailcenter.settings_urls")),
    path("contacts/", include("contacts.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("reports/", include("tracking.report_urls")),
    path("", include("tracking.urls")),
    path("webhooks/anymail/", include("tracking.esp_urls")),
    path("api/v1/", include("mailcenter.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

handler404 = "mailcenter.views.page_not_found"
handler500 = "mailcenter.views.server_error"
