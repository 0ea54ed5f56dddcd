"""Create the first admin user if there is none, and write its password to a file only the owner reads."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from controlplane.accounts.models import Role, User
from controlplane.accounts.services import user_create


class Command(BaseCommand):
    help = "Create an admin user (once) with a random password saved to --password-file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password-file", type=Path, required=True)

    def handle(self, *args: Any, username: str, password_file: Path, **options: Any) -> None:
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"admin user {username!r} exists")
            return
        password = secrets.token_urlsafe(12)
        user_create(actor=None, username=username, role=Role.ADMIN, password=password)
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.touch(mode=0o600)
        password_file.write_text(password + "\n")
        self.stdout.write(f"created admin user {username!r}; password in {password_file}")
