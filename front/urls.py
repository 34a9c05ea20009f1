from __future__ import annotations

from django.urls import path

from front import import_pages, report_pages, user_pages, views, webhook_pages

urlpatterns = [
    path("", views.home, name="home"),
    path("leads/", views.contact_list, name="contact_list"),
    path("leads/hand-over", views.hand_over, name="hand_over"),
    path("leads/export.csv", views.contact_export, name="contact_export"),
    path("leads/<int:contact_id>/", views.contact_detail, name="contact_detail"),
    path("leads/<int:contact_id>/profile", views.contact_profile, name="contact_profile"),
    path("leads/<int:contact_id>/notes", views.contact_note, name="contact_note"),
    path("leads/<int:contact_id>/hand-over", views.contact_hand_over, name="contact_hand_over"),
    path("leads/<int:contact_id>/reopen", views.contact_reopen, name="contact_reopen"),
    path("leads/<int:contact_id>/adjust", views.contact_adjust, name="contact_adjust"),
    path("leads/<int:contact_id>/stage", views.contact_stage, name="contact_stage"),
    path("reports/", report_pages.report_page, name="reports"),
    path("reports/<slug:table>.csv", report_pages.report_csv, name="report_csv"),
    path("imports/", import_pages.import_list, name="imports"),
    path("imports/<int:import_id>/", import_pages.import_detail, name="import_detail"),
    path("imports/<int:import_id>/start", import_pages.import_start, name="import_start"),
    path("imports/<int:import_id>/again", import_pages.import_again, name="import_again"),
    path("imports/<int:import_id>/errors.csv", import_pages.import_errors, name="import_errors"),
    path("settings/users/", user_pages.users, name="users"),
    path("settings/users/<int:user_id>/<slug:action>", user_pages.user_action, name="user_action"),
    path("invite/<str:token>/", user_pages.invitation, name="invitation"),
    path("settings/webhooks/", webhook_pages.endpoints, name="webhooks"),
    path("settings/webhooks/<int:endpoint_id>/", webhook_pages.endpoint_detail, name="webhook_detail"),
    path("settings/webhooks/<int:endpoint_id>/<slug:action>", webhook_pages.endpoint_action, name="webhook_action"),
]
