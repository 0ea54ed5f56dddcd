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
def celery_worker_process(django_db_serialized_rollback, transactional_db) -> Iterator[None]:
    """A real `celery worker` process on the configured broker, reading the test database.

    Serialized rollback puts back the GPU tiers the data migration seeded, which a transactional test's
    flush would otherwise leave empty for the tests after it.
    """
    from tests.processes import celery_worker

    with celery_worker():
        yield


@pytest.fixture
def bootstrap_token(db) -> str:
    """A bootstrap token agents register with."""
    from controlplane.accounts.services import token_create

    agents = UserFactory(username="agents", role="agent")
    _, raw = token_create(actor=None, user=agents, name="bootstrap", scope="bootstrap")
    return raw


@pytest.fixture
def register_node(bootstrap_token) -> Callable[..., tuple[dict, APIClient]]:
    """Register a node as its agent would; returns its JSON and a client holding its node token."""

    def register(name: str = "gpu-node-1", tier: str = "H100-SXM-80GB", gpu_count: int = 8) -> tuple[dict, APIClient]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {bootstrap_token}")
        response = client.post(
            "/api/v1/nodes/register",
            {"name": name, "tier": tier, "gpu_count": gpu_count, "agent_url": f"http://127.0.0.1:9000/{name}"},
            format="json",
        )
        assert response.status_code == 201, response.content
        node_client = APIClient()
        node_client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
        return response.json()["node"], node_client

    return register
