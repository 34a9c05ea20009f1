from __future__ import annotations

from django.urls import path

from scoring import views

urlpatterns = [
    path("criteria/", views.criteria_page, name="criteria"),
    path("criteria/v<int:number>.json", views.criteria_export, name="criteria_export"),
]
