from django.urls import path

from mailcenter import views

app_name = "settings"

urlpatterns = [
    path("", views.SettingsView.as_view(), name="index"),
    path("outbox/", views.OutboxListView.as_view(), name="outbox"),
    path("outbox/<int:pk>/", views.OutboxDetailView.as_view(), name="outbox-detail"),
    path("outbox/<int:pk>/html/", views.outbox_html, name="outbox-html"),
]
