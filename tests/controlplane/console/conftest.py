"""The console's cast logged in (alice the admin, bob an operator, charlie a viewer), a fixed clock and a seeded fleet."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

from tests.controlplane.console.seed import Seeded, seed

NOW = datetime(2027, 3, 1, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def as_admin(alice) -> Client:
    return _logged_in(alice)


@pytest.fixture
def as_operator(bob) -> Client:
    return _logged_in(bob)


@pytest.fixture
def as_viewer(charlie) -> Client:
    return _logged_in(charlie)


@pytest.fixture
def fleet(db, clock) -> Seeded:
    return seed(now=clock)
