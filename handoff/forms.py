"""The queue's inputs, parsed."""

from __future__ import annotations

from datetime import date, time
from zoneinfo import available_timezones

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone

from crm.roles import SALES
from handoff.business_time import Calendar
from handoff.models import Desk, QueueEntry, RoutingRule


class PageForm(forms.Form):
    page = forms.IntegerField(min_value=1, max_value=1_000_000, required=False)
    tab = forms.ChoiceField(choices=[("", "Open"), ("closed", "Closed")], required=False)

    def clean_page(self) -> int:
        return self.cleaned_data["page"] or 1


def _choice(choices, message: str) -> forms.ChoiceField:
    """A required choice whose one message says what to choose, missing or wrong alike."""
    return forms.ChoiceField(choices=choices, error_messages={"required": message, "invalid_choice": message})


class RejectForm(forms.Form):
    reason = _choice(QueueEntry.Reason.choices, "Choose a reason for rejecting the lead.")
    text = forms.CharField(max_length=2000, required=False)


class TouchForm(forms.Form):
    kind = _choice(QueueEntry.Touch.choices, "Say how you reached them: call, email or meeting.")
    note = forms.CharField(max_length=2000, required=False)


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class DeskForm(forms.ModelForm):
    """Assignment mode and the team calendar. Working hours are a start and an end per weekday (both empty: not
    worked); holidays one ISO date per line."""

    time_zone = forms.ChoiceField(choices=[(z, z) for z in sorted(available_timezones())], label="Time zone")
    holidays = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "2026-12-25"}),
        help_text="One date a line (YYYY-MM-DD): no working time that day.",
    )

    class Meta:
        model = Desk
        fields = ["mode", "offer_minutes", "business_hours", "time_zone"]
        labels = {"mode": "New SQLs", "offer_minutes": "Offer time (minutes)", "business_hours": "Business hours"}
        help_texts = {
            "offer_minutes": "An offer not taken in this time opens to everyone.",
            "business_hours": "SLA clocks count only the working hours below; off, they run around the clock.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["offer_minutes"].validators += [MinValueValidator(1), MaxValueValidator(24 * 60)]
        self.fields["offer_minutes"].widget.attrs |= {"min": 1, "max": 24 * 60}
        hours = self.instance.hours if isinstance(self.instance.hours, dict) else {}
        for day, name in enumerate(WEEKDAYS):
            opening = hours.get(str(day))
            start, end = opening if isinstance(opening, list | tuple) and len(opening) == 2 else ("", "")
            self.fields[f"start_{day}"] = forms.TimeField(required=False, label=f"{name} from", initial=start)
            self.fields[f"end_{day}"] = forms.TimeField(required=False, label=f"{name} to", initial=end)
            for key in (f"start_{day}", f"end_{day}"):
                self.fields[key].widget.input_type = "time"
        holidays = self.instance.holidays if isinstance(self.instance.holidays, list) else []
        self.initial.setdefault("holidays", "\n".join(str(d) for d in holidays))

    def days(self):
        return [(name, self[f"start_{day}"], self[f"end_{day}"]) for day, name in enumerate(WEEKDAYS)]

    def clean_holidays(self) -> list[str]:
        dates = []
        for n, line in enumerate(self.cleaned_data["holidays"].splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            if not line.isascii():
                raise forms.ValidationError(f"Line {n}: write the date as YYYY-MM-DD.")
            try:
                dates.append(date.fromisoformat(line).isoformat())
            except ValueError:
                raise forms.ValidationError(f"Line {n}: “{line}” is not a date (YYYY-MM-DD).") from None
        if len(dates) > 1000:
            raise forms.ValidationError("At most 1,000 holidays.")
        return sorted(set(dates))

    def clean(self):
        data = super().clean()
        hours = {}
        for day, name in enumerate(WEEKDAYS):
            start, end = data.get(f"start_{day}"), data.get(f"end_{day}")
            if start is None and end is None:
                continue
            start, end = (t.replace(second=0, microsecond=0) if t else None for t in (start, end))
            if start is None or end is None or end <= start:
                self.add_error(f"end_{day}", f"{name}: give a start and a later end, or leave both empty.")
                continue
            hours[str(day)] = [start.strftime("%H:%M"), end.strftime("%H:%M")]
        if data.get("business_hours") and not hours and not self.errors:
            self.add_error("business_hours", "Give working hours for at least one weekday.")
        elif data.get("business_hours") and not self.errors:
            calendar = Calendar(
                zone=data["time_zone"],
                hours={int(d): (time.fromisoformat(a), time.fromisoformat(b)) for d, (a, b) in hours.items()},
                holidays=frozenset(date.fromisoformat(d) for d in data.get("holidays", [])),
            )
            try:
                next(calendar.windows(timezone.now()))
            except ValueError:
                self.add_error("holidays", "With these holidays there is no working time in the next three years.")
        data["hours"] = hours
        return data

    def save(self, commit=True):
        self.instance.hours = self.cleaned_data["hours"]
        self.instance.holidays = self.cleaned_data["holidays"]
        return super().save(commit)


class WeightForm(forms.Form):
    rep = forms.IntegerField(min_value=1, max_value=2**31 - 1)
    weight = forms.IntegerField(min_value=1, max_value=100, help_text="Twice the weight, twice the offers")


class RoutingRuleForm(forms.ModelForm):
    class Meta:
        model = RoutingRule
        fields = ["name", "position", "channel", "country", "min_size", "max_size", "grade", "reps"]
        labels = {"min_size": "Company size from", "max_size": "Company size to", "reps": "Pool of reps"}
        widgets = {"reps": forms.CheckboxSelectMultiple}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reps"].queryset = (
            get_user_model().objects.filter(groups__name=SALES, is_active=True).order_by("first_name", "email")
        )
        self.fields["reps"].label_from_instance = lambda u: u.get_full_name() or u.email
        for name in ("position", "min_size", "max_size"):
            self.fields[name].validators.append(MaxValueValidator(2**31 - 1))

    def clean(self):
        data = super().clean()
        low, high = data.get("min_size"), data.get("max_size")
        if low is not None and high is not None and high < low:
            self.add_error("max_size", "The upper size is below the lower one.")
        return data
