from django.urls import path

from contacts import views

app_name = "contacts"

urlpatterns = [
    path("", views.ContactListView.as_view(), name="list"),
    path("<int:pk>/", views.ContactDetailView.as_view(), name="detail"),
    path("lists/", views.MailingListListView.as_view(), name="lists"),
    path("lists/new/", views.MailingListCreateView.as_view(), name="list-create"),
    path("lists/<int:pk>/", views.MailingListDetailView.as_view(), name="list-detail"),
    path("lists/<int:pk>/delete/", views.MailingListDeleteView.as_view(), name="list-delete"),
    path("import/", views.ContactImportCreateView.as_view(), name="import"),
    path("imports/<int:pk>/", views.ContactImportDetailView.as_view(), name="import-detail"),
    path(
        "imports/<int:pk>/progress/",
        views.ContactImportProgressView.as_view(),
        name="import-progress",
    ),
    path(
        "imports/<int:pk>/refused.csv",
        views.ContactImportRefusedCsvView.as_view(),
        name="import-refused-csv",
    ),
]
