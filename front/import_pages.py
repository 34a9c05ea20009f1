"""CSV import pages (marketing, admins): upload → map the columns → dry run → import, with progress and a history."""

from __future__ import annotations

from django import forms
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from crm.roles import ADMIN, MARKETING, role_required
from leads import import_rows, imports
from leads.import_forms import ImportOptions
from leads.models import Import

HISTORY = 50
SHOWN_ERRORS = 100
TARGETS = [("", "— don't import —"), *import_rows.FIELDS.items()]


class UploadForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, one header row, up to 50 MiB")


class MappingForm(ImportOptions):
    """The options, and a choice per column of the file: a field, the profile (under the column's name), or nothing."""

    mode = forms.ChoiceField(choices=Import.Mode.choices, widget=forms.RadioSelect, initial=Import.Mode.UPSERT)
    dry_run = None  # the button pressed says
    mapping = None

    def __init__(self, *args, file, initial_mapping: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.file = file
        for index, header in enumerate(file.headers):
            own = f"profile.{import_rows.normalised(header)[: import_rows.PROFILE_KEY_LIMIT]}"
            choices = [*TARGETS, *([(own, f"Profile: {own.removeprefix('profile.')}")] if own != "profile." else [])]
            current = initial_mapping.get(header, "")
            if current not in dict(choices):
                choices.append((current, f"Profile: {current.removeprefix('profile.')}"))
            self.fields[f"column_{index}"] = forms.ChoiceField(
                label=header or f"(column {index + 1}, no header)", choices=choices, required=False, initial=current
            )

    def columns(self, sample: list[list[str]]) -> list[tuple[forms.BoundField, str]]:
        """Each column's choice with its first values from ``sample`` rows."""
        return [
            (self[f"column_{index}"], " · ".join(row[index][:40] for row in sample if len(row) > index and row[index]))
            for index in range(len(self.file.headers))
        ]

    def clean(self):
        data = super().clean()
        data["mapping"] = {header: data.get(f"column_{index}") or "" for index, header in enumerate(self.file.headers)}
        for _, message in import_rows.mapping_problems(self.file.headers, data["mapping"]):
            self.add_error(None, message)
        return data


def _run(import_id: int) -> Import:
    return get_object_or_404(Import.objects.select_related("file", "created_by"), pk=import_id)


@role_required(MARKETING, ADMIN)
def import_list(request: HttpRequest) -> HttpResponse:
    """The import history, and the upload that starts a new one (a refused file says why, naming the row)."""
    form = UploadForm()
    status = 200
    if request.method == "POST":
        if int(request.META.get("CONTENT_LENGTH") or 0) > import_rows.MAX_FILE_BYTES + 1024 * 1024:
            form.add_error(None, "The file is over 50 MiB; split it and import the parts.")
            status = 413
        else:
            form = UploadForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                try:
                    if upload.size > import_rows.MAX_FILE_BYTES:
                        raise import_rows.FileRefused("The file is over 50 MiB; split it and import the parts.")
                    checked = import_rows.scan(upload)
                except import_rows.FileRefused as e:
                    form.add_error("file", str(e))
                    status = 413 if upload.size > import_rows.MAX_FILE_BYTES else 400
                else:
                    with transaction.atomic():
                        stored = imports.store_file(upload=upload, name=upload.name, checked=checked)
                        run = imports.create(
                            file=stored,
                            mapping={},
                            mode=Import.Mode.UPSERT,
                            overwrite=False,
                            dry_run=True,
                            start=False,
                            created_by=request.user,
                        )
                    return redirect("import_detail", run.pk)
            else:
                status = 400
    context = {"form": form, "runs": imports.history()[:HISTORY]}
    return render(request, "front/imports.html", context, status=status)


@require_GET
@role_required(MARKETING, ADMIN)
def import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    """A draft's column mapping, a running import's progress (polled over htmx), a finished one's outcome."""
    run = _run(import_id)
    context = {"run": run, "errors": run.problems.order_by("row", "pk")[:SHOWN_ERRORS]}
    if request.htmx and request.GET.get("part") == "progress":
        return render(request, "front/import_detail.html#progress", context)
    if run.state == Import.State.DRAFT:
        form = MappingForm(file=run.file, initial_mapping=run.mapping, initial={"mode": run.mode})
        context |= {"form": form, "columns": form.columns(imports.sample(run.file))}
    return render(request, "front/import_detail.html", context)


@require_POST
@role_required(MARKETING, ADMIN)
def import_start(request: HttpRequest, import_id: int) -> HttpResponse:
    """Start a draft as a dry run or for real, with the mapping and options chosen."""
    run = _run(import_id)
    if run.state != Import.State.DRAFT:
        return redirect("import_detail", run.pk)
    form = MappingForm(request.POST, file=run.file, initial_mapping=run.mapping)
    if not form.is_valid():
        context = {"run": run, "form": form, "columns": form.columns(imports.sample(run.file)), "errors": []}
        return render(request, "front/import_detail.html", context, status=400)
    run.mapping, run.mode = form.cleaned_data["mapping"], form.cleaned_data["mode"]
    run.overwrite, run.dry_run = form.cleaned_data["overwrite"], request.POST.get("action") != "import"
    with transaction.atomic():
        run.save(update_fields=["mapping", "mode", "overwrite", "dry_run"])
        imports.begin(run)
    return redirect("import_detail", run.pk)


@require_POST
@role_required(MARKETING, ADMIN)
def import_again(request: HttpRequest, import_id: int) -> HttpResponse:
    """A finished dry run, imported for real with the same file and options."""
    run = _run(import_id)
    if not (run.dry_run and run.state == Import.State.DONE):
        return redirect("import_detail", run.pk)
    with transaction.atomic():
        real = imports.again(run, created_by=request.user)
    return redirect("import_detail", real.pk)


@require_GET
@role_required(MARKETING, ADMIN)
def import_errors(request: HttpRequest, import_id: int) -> HttpResponse:
    """The skipped rows with their cells and why, as CSV: fix them and import the file again."""
    run = _run(import_id)
    response = StreamingHttpResponse(imports.error_file(run), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{run.pk}-errors.csv"'
    return response
