"""A publish's and a preview's passes over the events get room to sort and yield the CPU to live traffic."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from scoring import services
from tests.conftest import wait_for


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a process its priority back (as CI runs)")
@pytest.mark.django_db(transaction=True)
def test_a_heavy_pass_runs_niced_with_room_and_gives_both_back():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_setting('work_mem')")
        pid, work_mem = cursor.fetchone()
        os.setpriority(os.PRIO_PROCESS, pid, 3)  # as the database's own service may run it

        with transaction.atomic(), services.heavy(cursor):
            cursor.execute("SELECT current_setting('work_mem')")
            assert cursor.fetchone()[0] == services.COMPUTE_WORK_MEM
            assert os.getpriority(os.PRIO_PROCESS, pid) == services.BACKGROUND_NICE

        assert os.getpriority(os.PRIO_PROCESS, pid) == 3
        cursor.execute("SELECT current_setting('work_mem')")  # the transaction's setting ended with it
        assert cursor.fetchone()[0] == work_mem
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_failed_heavy_pass_raises_its_own_error():
    from django.db import ProgrammingError

    with (
        pytest.raises(ProgrammingError, match="no_such_table"),
        transaction.atomic(),
        connection.cursor() as cursor,
        services.heavy(cursor),
    ):
        cursor.execute("SELECT * FROM no_such_table")


def test_a_database_elsewhere_is_left_as_it_is(db, monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "HOST", "db.example.com")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        before = os.getpriority(os.PRIO_PROCESS, pid)

        with services.heavy(cursor):
            assert os.getpriority(os.PRIO_PROCESS, pid) == before


@contextmanager
def another_statement(seconds: float):
    """Another session's statement running meanwhile (ingest, a page)."""
    import threading

    from django.db import connections

    started = threading.Event()

    def busy() -> None:
        with connections["default"].cursor() as cursor:
            started.set()
            cursor.execute("SELECT pg_sleep(%s)", [seconds])
        connections["default"].close()

    other = threading.Thread(target=busy)
    other.start()
    started.wait(5)
    time.sleep(0.3)
    try:
        yield
    finally:
        other.join()


@pytest.mark.django_db(transaction=True)
def test_passes_go_two_at_once_on_a_quiet_database_and_one_at_a_time_on_a_busy_one(monkeypatch):
    from crm.models import Contact

    Contact.objects.bulk_create(Contact(email=f"p{i}@example.com") for i in range(40))
    monkeypatch.setattr(services, "CHUNK", 5)
    ranges = len(list(services.chunks(0, services.pass_size(40))))

    quiet = [len(batch) for batch in services.passes(0, 40)]
    with another_statement(2):
        while_busy = [len(batch) for batch in services.passes(0, 40)]

    assert ranges > 3
    assert sum(quiet) == ranges and set(quiet) == {2} | ({1} if ranges % 2 else set())
    assert while_busy == [1] * ranges


@pytest.mark.django_db(transaction=True)
def test_on_a_busy_database_work_that_moves_stages_takes_small_ranges_and_leaves_it_as_long_again():
    """A publish's stage rules and the decay refresh hold the rows of the contacts they move until they commit:
    under ingest they take few contacts at a time, and after each range leave the database to the others for as
    long as the range took (ingest kept 80 % of its rate only so)."""
    from crm.models import Contact

    Contact.objects.bulk_create(Contact(email=f"b{i}@example.com") for i in range(20))
    work, gaps = 0.2, []
    with another_statement(5):
        last = None
        for batch in services.batches(0, 1000, busy_size=5, yielding=True):
            if last is not None:
                gaps.append(time.monotonic() - last)
            assert [n for _, _, n in batch] == [5]
            time.sleep(work)  # the range's work
            last = time.monotonic()

        finished = time.monotonic() - last  # no pause after the last range

    assert len(gaps) == 3
    assert min(gaps) >= work * 0.9
    assert finished < work / 2


@pytest.mark.django_db(transaction=True)
def test_on_a_quiet_database_work_goes_at_once_without_a_pause():
    from crm.models import Contact

    Contact.objects.bulk_create(Contact(email=f"q{i}@example.com") for i in range(20))
    started = time.monotonic()
    batches = []
    for batch in services.batches(0, 1000, busy_size=5, yielding=True):
        batches.append([n for _, _, n in batch])
        time.sleep(0.2)

    assert batches == [[20]]
    assert time.monotonic() - started < 0.2 + 0.15


@pytest.mark.django_db(transaction=True)
def test_work_someone_waits_for_does_not_pause_on_a_busy_database():
    """A preview asked through the API answers its request: its passes go one at a time, without pauses."""
    from crm.models import Contact

    Contact.objects.bulk_create(Contact(email=f"w{i}@example.com") for i in range(20))
    gaps = []
    with another_statement(3):
        last = None
        for _batch in services.batches(0, 5):
            if last is not None:
                gaps.append(time.monotonic() - last)
            time.sleep(0.2)
            last = time.monotonic()

    assert len(gaps) == 3
    assert max(gaps) < 0.1


@pytest.mark.django_db(transaction=True)
def test_a_crew_keeps_a_connection_per_thread_across_its_batches_and_closes_them_as_it_ends():
    """A new connection per range cost a database process's start and cold caches each time (~50 ms a batch of a
    publish's stage rules)."""

    def backend(_lo: int, _hi: int, _n: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    with services.Crew() as crew:
        pids = [pid for _ in range(3) for pid in crew.at_once(backend, ((1, 2, 2), (3, 4, 2)))]
        alone = crew.at_once(backend, ((5, 6, 2),))

    assert len(pids) == 6 and len(set(pids)) == services.COMPUTE_AT_ONCE == 2
    assert alone == [backend(0, 0, 0)]  # a batch of one: the caller's connection

    def gone() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = ANY(%s)", [list(set(pids))])
            return cursor.fetchone()[0]

    wait_for(gone, timeout=5)
