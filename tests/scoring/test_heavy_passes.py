"""A publish's and a preview's passes over the events get room to sort and yield the CPU to live traffic."""

import os

import pytest
from django.db import connection

from scoring import services


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a process its priority back (as CI runs)")
def test_a_heavy_pass_runs_niced_with_room_and_gives_both_back(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_setting('work_mem')")
        pid, work_mem = cursor.fetchone()

        with services.heavy(cursor):
            cursor.execute("SELECT current_setting('work_mem')")
            assert cursor.fetchone()[0] == services.COMPUTE_WORK_MEM
            assert os.getpriority(os.PRIO_PROCESS, pid) == services.BACKGROUND_NICE

        cursor.execute("SELECT current_setting('work_mem')")
        assert cursor.fetchone()[0] == work_mem
    assert os.getpriority(os.PRIO_PROCESS, pid) == 0


def test_a_database_elsewhere_is_left_as_it_is(db, monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "HOST", "db.example.com")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        before = os.getpriority(os.PRIO_PROCESS, pid)

        with services.heavy(cursor):
            assert os.getpriority(os.PRIO_PROCESS, pid) == before
