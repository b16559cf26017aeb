from django.urls import path

from contacts import views

app_name = "contacts"

urlpatterns = [
    path("", views.ContactListView.as_view(), name="list"),
    path("<int:pk>/", views.ContactDetailView.as_view(), name="detail"),
    path("<int:pk>/data.json", views.ContactDataView.as_view(), name="data"),
    path("<int:pk>/erase/", views.ContactEraseView.as_view(), name="erase"),
    path("export/", views.ContactExportView.as_view(), name="export"),
    path("lists/", views.MailingListListView.as_view(), name="lists"),
    path("lists/new/", views.MailingListCreateView.as_view(), name="list-create"),
    path("lists/<int:pk>/", views.MailingListDetailView.as_view(), name="list-detail"),
    path("lists/<int:pk>/delete/", views.MailingListDeleteView.as_view(), name="list-delete"),
    path("fields/", views.CustomFieldListView.as_view(), name="fields"),
    path("fields/<int:pk>/", views.CustomFieldUpdateView.as_view(), name="field-edit"),
    path("fields/<int:pk>/delete/", views.CustomFieldDeleteView.as_view(), name="field-delete"),
    path("segments/", views.SegmentListView.as_view(), name="segments"),
    path("segments/new/", views.SegmentCreateView.as_view(), name="segment-create"),
    path("segments/count/", views.SegmentCountView.as_view(), name="segment-count"),
    path("segments/<int:pk>/", views.SegmentUpdateView.as_view(), name="segment-edit"),
    path("segments/<int:pk>/delete/", views.SegmentDeleteView.as_view(), name="segment-delete"),
    path(
        "campaign-audience/<int:pk>/",
        views.CampaignAudienceView.as_view(),
        name="campaign-audience",
    ),
    path("suppressions/", views.SuppressionListView.as_view(), name="suppressions"),
    path("suppressions/add/", views.SuppressionAddView.as_view(), name="suppression-add"),
    path("suppressions/import/", views.SuppressionImportView.as_view(), name="suppression-import"),
    path(
        "suppressions/<int:pk>/delete/",
        views.SuppressionDeleteView.as_view(),
        name="suppression-delete",
    ),
    path("preferences/<str:token>/", views.PreferencesView.as_view(), name="preferences"),
    path("forms/", views.SignupFormListView.as_view(), name="signup-forms"),
    path("forms/new/", views.SignupFormCreateView.as_view(), name="signup-form-create"),
    path("forms/<int:pk>/", views.SignupFormUpdateView.as_view(), name="signup-form-edit"),
    path("forms/<int:pk>/delete/", views.SignupFormDeleteView.as_view(), name="signup-form-delete"),
    path("subscribe/<str:key>/", views.PublicSignupView.as_view(), name="signup"),
    path("confirm/<str:token>/", views.SignupConfirmView.as_view(), name="signup-confirm"),
    path("import/", views.ContactImportCreateView.as_view(), name="import"),
    path("imports/<int:pk>/", views.ContactImportDetailView.as_view(), name="import-detail"),
    path("imports/<int:pk>/cancel/", views.ContactImportCancelView.as_view(), name="import-cancel"),
    path(
        "imports/<int:pk>/mapping/",
        views.ContactImportMappingView.as_view(),
        name="import-mapping",
    ),
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
