"""URL configuration of the test project."""

from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/hello", views.hello),
    path("api/form", views.form),
    path("api/upload", views.upload),
    path("api/stream", views.stream),
    path("api/file", views.file),
    path("api/boom", views.boom),
]
