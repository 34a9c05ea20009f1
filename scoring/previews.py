"""The criteria page's preview of a draft, computed by a worker with progress (scoring.criteria.preview); the
result stays with the draft until it is saved again. The API answers a preview at once instead."""

from __future__ import annotations

import logging
from functools import partial

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from crm.celery import send_soon
from scoring import criteria
from scoring.models import CriteriaVersion, PreviewRun

log = logging.getLogger(__name__)
TASK = "scoring.tasks.preview"


def start(*, version: CriteriaVersion) -> PreviewRun:
    """Record a preview of the draft ``version`` and send it to the workers on commit."""
    run = PreviewRun.objects.create(version=version)
    transaction.on_commit(partial(send_soon, TASK, [run.pk], what=f"preview {run.pk}"))
    return run


def latest(version: CriteriaVersion) -> PreviewRun | None:
    return version.previews.order_by("-pk").first()


def outcome(run: PreviewRun | None) -> criteria.Preview | None:
    """A finished preview's result, as scoring.criteria.preview gave it."""
    return criteria.Preview.of_json(run.result) if run and run.finished_at else None


def forget(version: CriteriaVersion) -> None:
    """The draft changed: its previews no longer say what publishing it would do."""
    version.previews.all().delete()


def run(*, preview_id: int) -> None:
    """Compute a recorded preview, stamping its progress after every pass. Safe to run twice (a finished one is
    left); a failure is recorded, except the database going away, which the task retries."""
    found = PreviewRun.objects.select_related("version").filter(pk=preview_id, finished_at=None).first()
    if found is None:
        return

    def progress(done: int, total: int) -> None:
        PreviewRun.objects.filter(pk=found.pk).update(done=done, total=total, heartbeat_at=timezone.now())

    try:
        result = criteria.preview(found.version, progress=progress)
    except (OperationalError, InterfaceError):
        raise
    except Exception as e:
        log.exception("preview %s failed", preview_id)
        PreviewRun.objects.filter(pk=found.pk).update(failed_at=timezone.now(), problem=f"Stopped by an error: {e}")
        return
    PreviewRun.objects.filter(pk=found.pk).update(result=result.as_json(), finished_at=timezone.now(), failed_at=None)
