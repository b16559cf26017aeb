from django.urls import path
from django.views.generic import TemplateView

app_name = "campaigns"

_todo = TemplateView.as_view(template_name="base.html")
urlpatterns = [
    path("", _todo, name="list"),
    path("new/", _todo, name="create"),
    path("<int:pk>/", _todo, name="detail"),
]
