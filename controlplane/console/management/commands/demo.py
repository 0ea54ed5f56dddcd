"""`make demo`: migrate, seed, and run the control plane on its embedded defaults until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and beat on the embedded defaults, printing the admin login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        var: Path = settings.VAR_DIR
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        password_file = var / "demo_admin_password"
        call_command("ensure_admin", username="admin", password_file=password_file)

        env = dict(os.environ, SECRET_KEY=settings.SECRET_KEY, CLEAVE_VAR_DIR=str(var), PYTHONUNBUFFERED="1")
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "controlplane.wsgi", "--bind", f"{host}:{port}",
                 "--workers", "2", "--threads", "4", "--access-logfile", "-"],
                env=env,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--beat", "-Q",
                 "default,rollout,telemetry,profiling", "--concurrency", "2", "-l", "INFO",
                 "--schedule", str(var / "celerybeat-schedule")],
                env=env,
            ),
        ]
        self.stdout.write(self.style.SUCCESS(
            f"\nCleave is up: http://{host}:{port}/  (API docs: /api/docs/)\n"
            f"log in as admin / {password_file.read_text().strip()}\n"
            "Ctrl-C stops everything.\n"
        ))
        self._wait(processes)

    def _wait(self, processes: list[subprocess.Popen[bytes]]) -> None:
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(process.poll() is None for process in processes):
            time.sleep(0.5)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        failed = [process for process in processes if process.returncode not in (0, -signal.SIGTERM)]
        if failed and not stopping:
            raise SystemExit(f"a demo process stopped unexpectedly: {failed[0].args!r}")
