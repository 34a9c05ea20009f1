"""Forms for the criteria pages: version settings and the two rule tables."""

from __future__ import annotations

from typing import Any

from django import forms
from django.forms import inlineformset_factory

from scoring import criteria
from scoring.models import BehaviourRule, CriteriaVersion, FitRule

SETTINGS = [
    "half_life_days",
    "mql_threshold",
    "sql_threshold",
    "hysteresis",
    "intent_days",
    "grade_a",
    "grade_b",
    "grade_c",
    "sla_first_touch_minutes",
    "sla_unclaimed_minutes",
]


class ValuesField(forms.CharField):
    """A rule's values as the admin types them: comma-separated."""

    def prepare_value(self, value: Any) -> str:
        return ", ".join(str(v) for v in value) if isinstance(value, list) else (value or "")

    def to_python(self, value: Any) -> list[str]:
        return [v.strip() for v in str(value or "").split(",") if v.strip()]

    def has_changed(self, initial: Any, data: Any) -> bool:
        # Compare as lists: an untouched blank rule row must stay "unchanged" (and so be skipped).
        return self.to_python(self.prepare_value(initial)) != self.to_python(data)


HELP = {
    "half_life_days": (
        "days",
        "Behaviour points halve every this many days (recent activity counts most); 0 turns decay off.",
    ),
    "mql_threshold": ("points", "A lead whose score reaches this becomes an MQL (marketing qualified)."),
    "sql_threshold": (
        "points",
        "An MQL whose score reaches this, with a sales-intent form in the window below, becomes an "
        "SQL and enters the sales queue.",
    ),
    "hysteresis": (
        "points",
        "An MQL drops back to lead only below the MQL threshold minus this margin, so a score "
        "sitting on the line does not flap.",
    ),
    "intent_days": ("days", "How recent the demo or contact request must be for SQL."),
    "grade_a": ("fit points", "Fit score from which a contact is grade A."),
    "grade_b": ("fit points", "Fit score from which a contact is grade B."),
    "grade_c": ("fit points", "Fit score from which a contact is grade C; below it, D."),
    "sla_first_touch_minutes": (
        "minutes",
        "From claim to first touch; past it the lead goes back to the queue, flagged.",
    ),
    "sla_unclaimed_minutes": ("minutes", "How long an SQL may wait unclaimed before the breach is recorded."),
}
EVENT_TYPES = (
    "page_view",
    "form_submit",
    "email_open",
    "email_click",
    "email_bounce",
    "email_unsubscribe",
    "email_subscribe",
    "identify",
    "webinar_attended",
    "meeting_booked",
    "trial_started",
)
PROPERTY_KEYS = (
    "path",
    "url",
    "title",
    "referrer",
    "form",
    "form_kind",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "campaign",
    "link",
)


class ErrorRows:
    @property
    def error_rows(self) -> list[tuple[str, str]]:
        """(label, messages) for people: "MQL threshold", not "mql_threshold"."""
        return [
            ("" if name == "__all__" else str(self.fields[name].label), " ".join(messages))
            for name, messages in self.errors.items()
        ]


class SettingsForm(ErrorRows, forms.ModelForm):
    class Meta:
        model = CriteriaVersion
        fields = SETTINGS
        labels = criteria.SETTING_LABELS
        help_texts = {name: text for name, (_, text) in HELP.items()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, (unit, _) in HELP.items():
            self.fields[name].widget.attrs |= {"step": "any", "min": "0", "aria-describedby": f"help-{name}"}
            self.fields[name].unit = unit

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in ("half_life_days", "mql_threshold", "sql_threshold", "hysteresis"):
            if data.get(name) is not None and data[name] < 0:
                self.add_error(name, "Must not be below zero.")
        if (data.get("sql_threshold") or 0) < (data.get("mql_threshold") or 0):
            self.add_error("sql_threshold", "Must not be under the MQL threshold.")
        return data


class RuleForm(ErrorRows, forms.ModelForm):
    """A rule row: refused inline (so nothing is saved) when scoring.criteria would reject the rule."""

    values = ValuesField(required=False)
    check = None  # the scoring.criteria function that lists a rule's problems

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors and not data.get("DELETE"):
            rule = self._meta.model(**{k: v for k, v in data.items() if k in self._meta.fields})
            for problem in type(self).check(rule):
                self.add_error(None, problem)
        return data


class BehaviourForm(RuleForm):
    check = staticmethod(criteria.behaviour_problems)

    class Meta:
        model = BehaviourRule
        fields = ["position", "name", "event_type", "property_key", "operator", "values", "points", "cap"]
        labels = {"property_key": "Property", "event_type": "Event type"}
        widgets = {
            "event_type": forms.TextInput(attrs={"list": "event-types", "size": 14}),
            "property_key": forms.TextInput(attrs={"list": "property-keys", "size": 10}),
        }


class FitForm(RuleForm):
    check = staticmethod(criteria.fit_problems)

    class Meta:
        model = FitRule
        fields = ["position", "name", "field", "operator", "values", "points"]
        widgets = {"field": forms.TextInput(attrs={"list": "fit-fields", "size": 14})}


BehaviourRules = inlineformset_factory(CriteriaVersion, BehaviourRule, form=BehaviourForm, extra=1, can_delete=True)
FitRules = inlineformset_factory(CriteriaVersion, FitRule, form=FitForm, extra=1, can_delete=True)


class BacktestForm(forms.Form):
    days = forms.IntegerField(min_value=7, max_value=365, initial=90, label="Replay the last (days)")


class EvidenceForm(forms.Form):
    days = forms.IntegerField(min_value=7, max_value=730, initial=180, label="Window (days)")
