from __future__ import annotations

from django.urls import path

from handoff import desk_pages, views

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("queue/next", views.claim_next, name="claim_next"),
    path("queue/available", views.availability, name="availability"),
    path("queue/<int:entry_id>/<slug:action>", views.act, name="queue_action"),
    path("settings/desk/", desk_pages.desk, name="desk"),
    path("settings/desk/rules/<int:rule_id>/delete", desk_pages.delete_rule, name="delete_rule"),
]
