"""Fixtures every test may use: the cast, token-authenticated API clients, and a real Celery worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory


@pytest.fixture
def alice(db):  # the admin
    return UserFactory(username="alice", role="admin")


@pytest.fixture
def bob(db):  # an operator
    return UserFactory(username="bob", role="operator")


@pytest.fixture
def charlie(db):  # a viewer
    return UserFactory(username="charlie", role="viewer")


@pytest.fixture
def api_as(db) -> Callable[..., APIClient]:
    """A client authenticated with a fresh API token of `user` (None: anonymous)."""
    from controlplane.accounts.services import token_create

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            _, raw = token_create(actor=None, user=user, name=f"test-{user.username}")
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    return make


@pytest.fixture
def celery_worker_process(transactional_db) -> Iterator[None]:
    """A real `celery worker` process on the configured broker, reading the test database."""
    from tests.processes import celery_worker

    with celery_worker():
        yield
