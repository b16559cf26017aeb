from django.urls import path

from mailcenter import domain_views, sender_views, views
from tracking.webhooks import views as webhook_views

app_name = "settings"

urlpatterns = [
    path("", views.SettingsView.as_view(), name="index"),
    path("outbox/", views.OutboxListView.as_view(), name="outbox"),
    path("outbox/<int:pk>/", views.OutboxDetailView.as_view(), name="outbox-detail"),
    path("outbox/<int:pk>/html/", views.outbox_html, name="outbox-html"),
    path("senders/", sender_views.sender_list, name="senders"),
    path("senders/new/", sender_views.sender_create, name="sender-create"),
    path("senders/<str:alias>/", sender_views.sender_edit, name="sender-edit"),
    path("senders/<str:alias>/delete/", sender_views.sender_delete, name="sender-delete"),
    path("senders/<str:alias>/test/", sender_views.sender_test, name="sender-test"),
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
    path("webhooks/", webhook_views.webhook_list, name="webhooks"),
    path("webhooks/<int:pk>/", webhook_views.webhook_detail, name="webhook-detail"),
    path("webhooks/<int:pk>/toggle/", webhook_views.webhook_toggle, name="webhook-toggle"),
    path("webhooks/<int:pk>/delete/", webhook_views.webhook_delete, name="webhook-delete"),
    path("webhooks/<int:pk>/secret/", webhook_views.webhook_secret, name="webhook-secret"),
    path("webhooks/<int:pk>/test/", webhook_views.webhook_test, name="webhook-test"),
]
