from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from crm import views
from crm.login import LoginForm

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=LoginForm),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("front.urls")),
    path("", include("leads.urls")),
    path("", include("handoff.urls")),
    path("", include("scoring.urls")),
]

handler400 = "crm.error_pages.bad_request"
handler403 = "crm.error_pages.permission_denied"
handler404 = "crm.error_pages.not_found"
handler500 = "crm.error_pages.server_error"
