"""Real processes for the tests that need them: a Celery worker (and, later, servers and agents)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at the moment (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout_s: float = 20.0, what: str = "the condition", poll_s: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; that value. TimeoutError names ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout_s} s")
        time.sleep(poll_s)


def test_database_url() -> str:
    """The URL of the database the tests run on, for child processes to use the same one."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}@{host}{port}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=test_database_url(),
        CLEAVE_VAR_DIR=str(settings.VAR_DIR),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_FILESYSTEM_DIR=os.environ.get("CELERY_FILESYSTEM_DIR", ""),
        SECRET_KEY=settings.SECRET_KEY,
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def purge_broker() -> None:
    from controlplane.celery import app

    app.control.purge()


def wait_for_text(log: Path, text: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} not seen in {timeout_s} s:\n{log.read_text(errors='replace')[-4000:]}")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def celery_worker(queues: str = "default,rollout,telemetry,profiling", **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start `celery worker` as its own process and wait until it is consuming."""
    purge_broker()
    with tempfile.NamedTemporaryFile(prefix="celery-worker-", suffix=".log", delete=False) as handle:
        log = Path(handle.name)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", queues, "--pool", "solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
            cwd=ROOT, env=child_env(**env), stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_text(log, "ready.", process, timeout_s=60)
        yield process
    except BaseException:
        # What the worker did is the first thing to read when a test through it fails.
        sys.stderr.write(f"--- celery worker log ---\n{log.read_text(errors='replace')[-6000:]}\n")
        raise
    finally:
        stop(process)
        log.unlink(missing_ok=True)
