from __future__ import annotations

from django.urls import path

from handoff import views

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("queue/<int:entry_id>/<slug:action>", views.act, name="queue_action"),
]
