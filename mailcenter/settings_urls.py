from django.urls import path

from mailcenter import domain_views, views

app_name = "settings"

urlpatterns = [
    path("", views.SettingsView.as_view(), name="index"),
    path("outbox/", views.OutboxListView.as_view(), name="outbox"),
    path("outbox/<int:pk>/", views.OutboxDetailView.as_view(), name="outbox-detail"),
    path("outbox/<int:pk>/html/", views.outbox_html, name="outbox-html"),
    path("domains/", domain_views.domain_list, name="domains"),
    path("domains/<int:pk>/", domain_views.domain_detail, name="domain-detail"),
    path("domains/<int:pk>/delete/", domain_views.domain_delete, name="domain-delete"),
    path("domains/<int:pk>/keys/", domain_views.key_generate, name="domain-key-generate"),
    path(
        "domains/<int:pk>/keys/<int:key_pk>/activate/",
        domain_views.key_activate,
        name="domain-key-activate",
    ),
    path(
        "domains/<int:pk>/keys/<int:key_pk>/deactivate/",
        domain_views.key_deactivate,
        name="domain-key-deactivate",
    ),
    path(
        "domains/<int:pk>/keys/<int:key_pk>/delete/",
        domain_views.key_delete,
        name="domain-key-delete",
    ),
]
