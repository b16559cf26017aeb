from django.urls import path

from tracking import views

urlpatterns = [
    path("t/o/<str:token>/", views.open_pixel, name="track-open"),
    path("t/c/<str:token>/", views.click, name="track-click"),
    path("t/w/<str:token>/", views.webview, name="webview"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
