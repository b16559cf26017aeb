from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mailcenter import views

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("settings/", include("mailcenter.settings_urls")),
    path("contacts/", include("contacts.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("reports/", include("tracking.report_urls")),
    path("", include("tracking.urls")),
    path("api/v1/", include("mailcenter.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

handler404 = "mailcenter.views.page_not_found"
handler500 = "mailcenter.views.server_error"
