"""Strict settings: a bad value stops the process with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import envbool, envint, envstr, envurl
from tests.processes import ROOT


def start_django(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY"}}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env={"DJANGO_SETTINGS_MODULE": "controlplane.settings", **clean}, capture_output=True, text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "mysql://u:secret@h/db", "DEBUG": "1"}, "DATABASE_URL: scheme 'mysql' is not supported"),
        ({"DATABASE_URL": "not a url", "DEBUG": "1"}, "DATABASE_URL: not a URL"),
        ({"DATABASE_URL": "postgresql://u@h", "DEBUG": "1"}, "DATABASE_URL: no database name"),
        ({"CELERY_BROKER_URL": "kafka://h", "DEBUG": "1"}, "CELERY_BROKER_URL: scheme 'kafka' is not supported"),
        ({"DEBUG": "maybe"}, "DEBUG: 'maybe' is not a boolean"),
        ({"DEBUG": "0"}, "SECRET_KEY: not set"),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "SECRET_KEY: too short"),
        ({"DEBUG": "1", "CSRF_TRUSTED_ORIGINS": "example.com"}, "CSRF_TRUSTED_ORIGINS: 'example.com' must start with"),
        ({"DEBUG": "1", "HEARTBEAT_TIMEOUT_S": "soon"}, "HEARTBEAT_TIMEOUT_S: 'soon' is not a number"),
    ],
)
def test_a_bad_setting_stops_the_process_naming_the_variable(env, message):
    result = start_django(**env)
    assert result.returncode != 0
    assert message in result.stderr


def test_a_database_password_never_appears_in_the_error():
    result = start_django(DATABASE_URL="mysql://user:hunter2-secret@db/cleave", DEBUG="1")
    assert "hunter2-secret" not in result.stderr


def test_good_settings_start(tmp_path):
    result = start_django(DEBUG="0", SECRET_KEY="x" * 50, CLEAVE_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_a_secret_can_come_from_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("SOME_SECRET_FILE", str(secret))
    assert envstr("SOME_SECRET") == "from-a-file"


def test_an_unreadable_secret_file_is_named(monkeypatch):
    monkeypatch.setenv("SOME_SECRET_FILE", "/nonexistent/secret")
    with pytest.raises(ImproperlyConfigured, match="SOME_SECRET_FILE: cannot read '/nonexistent/secret'"):
        envstr("SOME_SECRET")


def test_numbers_and_booleans_are_parsed_strictly(monkeypatch):
    monkeypatch.setenv("WORKERS", "-1")
    with pytest.raises(ImproperlyConfigured, match="WORKERS: -1 is below the minimum of 1"):
        envint("WORKERS", 4, minimum=1)
    monkeypatch.setenv("FLAG", "On")
    assert envbool("FLAG", False) is True
    monkeypatch.setenv("BROKER", "redis://localhost:6379/0")
    assert envurl("BROKER", "filesystem://", schemes={"redis"}) == "redis://localhost:6379/0"
