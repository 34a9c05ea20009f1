from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet

from crm.freshness import mark_stale
from crm.models import Company, Contact, StageChange


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ("name", "domain", "size", "industry", "country")
    search_fields = ("name", "domain")

    def save_model(self, request, obj: Company, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and form.changed_data:  # fit rules read the company's size and industry
            mark_stale(contact_ids=list(obj.contacts.values_list("pk", flat=True)))


class StageChangeInline(admin.TabularInline):
    model = StageChange
    fields = ("at", "from_stage", "to_stage", "by_label", "reason", "score")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("email", "first_name", "last_name", "company", "stage", "score", "grade", "owner")
    list_filter = ("stage",)
    list_select_related = ("company", "owner")
    search_fields = ("email", "first_name", "last_name", "company__name")
    raw_id_fields = ("company", "owner")
    # Stage and score change only through the lifecycle service and the scoring engine.
    readonly_fields = (
        "stage",
        "score",
        "fit_score",
        "engagement_score",
        "grade",
        "trend",
        "last_activity_at",
        "scored_at",
        "criteria_version",
        "created_at",
        "updated_at",
    )
    inlines = [StageChangeInline]

    def get_queryset(self, request) -> QuerySet[Contact]:
        return super().get_queryset(request).scored()

    @staticmethod
    def _live(name: str):
        return admin.display(description=name.replace("_", " "))(lambda self, obj: getattr(obj, name))

    score, fit_score, engagement_score, grade, trend = map(
        _live, ("score", "fit_score", "engagement_score", "grade", "trend")
    )
    last_activity_at, scored_at, criteria_version = map(_live, ("last_activity_at", "scored_at", "criteria_version"))

    def save_model(self, request, obj: Contact, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if form.changed_data:  # the same stale mark as every other profile change: rescored after commit
            mark_stale(contact_ids=[obj.pk])
