from django.urls import path

from . import views

app_name = "dashboards"
urlpatterns = [
    path("", views.page, {"name": "business"}, name="index"),
    *[path(f"{name}/", views.page, {"name": name}, name=name) for name in views.PAGES],
]
