from django.urls import path
from django.views.generic import TemplateView

app_name = "contacts"

# Placeholder routes; replaced by the contacts views.
_todo = TemplateView.as_view(template_name="base.html")
urlpatterns = [
    path("", _todo, name="list"),
    path("lists/", _todo, name="lists"),
]
