from django.urls import path

from tracking import report_views

app_name = "reports"

urlpatterns = [
    path("", report_views.ReportIndexView.as_view(), name="index"),
    path("<int:pk>/", report_views.CampaignReportView.as_view(), name="campaign"),
    path(
        "<int:pk>/recipients/",
        report_views.CampaignRecipientsView.as_view(),
        name="recipients",
    ),
    path(
        "<int:pk>/recipients/segment/",
        report_views.CampaignRecipientsSegmentView.as_view(),
        name="recipients-segment",
    ),
    path(
        "<int:pk>/recipients.csv",
        report_views.campaign_recipients_csv,
        name="recipients-csv",
    ),
]
