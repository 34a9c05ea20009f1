"""Outgoing webhooks: 10,000 queued deliveries drained to a local receiver, and one stage change to a
delivered webhook through a real worker. Beside each, the raw limit: the same POSTs with no outbox.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench.support import BASE_DIR, bench_database_url, free_port, setup_django, table

QUEUED = 10_000
_pool = None


def _http():
    """A plain keep-alive client for the raw limits."""
    global _pool
    if _pool is None:
        import urllib3

        _pool = urllib3.PoolManager(maxsize=16, retries=False)
    return _pool


CHANGES = 40
RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 128
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def receiver() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    time.sleep(0.5)
    return proc, f"http://127.0.0.1:{port}/hook"


def drain_once(url: str) -> float:
    from django.utils import timezone

    from crm import webhooks
    from crm.models import WebhookDelivery, WebhookEndpoint

    WebhookDelivery.objects.all().delete()
    endpoint = WebhookEndpoint.objects.get(url=url)
    now = timezone.now()
    body = {"type": "handoff.created", "timestamp": now.isoformat(), "data": {"contact": {"id": 1, "score": 80}}}
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint,
                message_id=f"msg_{i}",
                type="handoff.created",
                body=body,
                created_at=now,
                next_attempt_at=now,
            )
            for i in range(QUEUED)
        ],
        batch_size=2000,
    )
    began = time.perf_counter()
    webhooks.deliver_due()
    elapsed = time.perf_counter() - began
    assert WebhookDelivery.objects.filter(status="delivered").count() == QUEUED
    return QUEUED / elapsed


def raw_once(url: str) -> float:
    """The same number of POSTs, as concurrent, with nothing read or written in PostgreSQL."""
    from crm.webhooks import SENDERS

    body = b'{"type":"handoff.created","data":{"contact":{"id":1,"score":80}}}'
    began = time.perf_counter()
    with ThreadPoolExecutor(SENDERS) as pool:
        list(
            pool.map(
                lambda i: _http().request("POST", url, body=body, headers={"Content-Type": "application/json"}),
                range(QUEUED),
            )
        )
    return QUEUED / (time.perf_counter() - began)


def change_to_delivery(url: str) -> tuple[list[float], list[float]]:
    """Stage changes made one by one; each timed until its delivery is recorded as delivered by the worker."""
    from crm.lifecycle import Actor, move
    from crm.models import Contact, WebhookDelivery

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "crm", "worker", "-l", "warning", "-c", "2"], cwd=BASE_DIR
    )
    try:
        time.sleep(6)
        latencies, raw = [], []
        for i in range(CHANGES):
            contact = Contact.objects.create(email=f"bench-hook-{time.time_ns()}-{i}@example.com")
            began = time.perf_counter()
            move(contact_id=contact.pk, to="mql", by=Actor.scoring(1))
            deadline = time.monotonic() + 30
            while not WebhookDelivery.objects.filter(contact=contact, status="delivered").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("a delivery did not arrive within 30 s")
                time.sleep(0.005)
            latencies.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            _http().request("POST", url, body=b"{}", headers={"Content-Type": "application/json"})
            raw.append((time.perf_counter() - began) * 1000)
        return latencies, raw
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def main() -> None:
    bench_database_url()
    import os

    os.environ["WEBHOOKS_ALLOW_PRIVATE"] = "true"
    setup_django()
    from crm import webhooks
    from crm.models import WebhookEndpoint

    proc, url = receiver()
    try:
        WebhookEndpoint.objects.create(
            name="bench", url=url, events=list(WebhookEndpoint.Event.values), secret_salt=webhooks.new_salt()
        )
        rows = []
        for _ in range(3):
            rows.append((raw_once(url), drain_once(url)))
            print(".", end="", flush=True)
        raw = statistics.median(r for r, _ in rows)
        drained = statistics.median(d for _, d in rows)
        table(
            f"Webhooks: {QUEUED:,} queued deliveries drained to a local receiver (medians of 3, same 2 cores)",
            ("path", "deliveries/s", "runs", "ratio"),
            [
                (
                    "raw: the same POSTs, 16 at a time, no database",
                    f"{raw:,.0f}",
                    ", ".join(f"{r:,.0f}" for r, _ in rows),
                    "1.00",
                ),
                (
                    "Baton: outbox → signed POSTs → recorded",
                    f"{drained:,.0f}",
                    ", ".join(f"{d:,.0f}" for _, d in rows),
                    f"{drained / raw:.2f}",
                ),
            ],
        )
        runs = [change_to_delivery(url) for _ in range(3)]
        p95 = lambda xs: statistics.quantiles(xs, n=20)[18]  # noqa: E731
        table(
            f"Webhooks: one stage change → delivered, through a real worker ({CHANGES} changes × 3 runs)",
            ("path", "p50 ms", "p95 ms (median of 3)", "ratio"),
            [
                (
                    "raw: one POST round trip",
                    f"{statistics.median(statistics.median(r) for _, r in runs):.1f}",
                    f"{statistics.median(p95(r) for _, r in runs):.1f}",
                    "1.00",
                ),
                (
                    "Baton: change committed → worker → delivered",
                    f"{statistics.median(statistics.median(ms) for ms, _ in runs):.1f}",
                    f"{statistics.median(p95(ms) for ms, _ in runs):.1f}",
                    f"{statistics.median(p95(ms) for ms, _ in runs) / statistics.median(p95(r) for _, r in runs):.0f}",
                ),
            ],
        )
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
