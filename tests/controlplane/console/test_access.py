"""Every page needs a login and at least a viewer; users and tokens need an admin; machines get nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.controlplane.console.pages import ADMIN_PAGES, VIEWER_PAGES, page_urls
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_visitors_to_the_login_page(fleet):
    for name, url in page_urls(fleet).items():
        response = Client().get(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith("/login/?next="), name


@pytest.mark.parametrize("client_fixture", ["as_viewer", "as_operator", "as_admin"])
def test_every_role_reads_every_page_but_users_and_tokens(fleet, client_fixture, request):
    client = request.getfixturevalue(client_fixture)
    urls = page_urls(fleet)
    for name in VIEWER_PAGES:
        assert client.get(urls[name]).status_code == 200, name
    for name in ADMIN_PAGES:
        assert client.get(urls[name]).status_code == (200 if client_fixture == "as_admin" else 403), name


def test_machine_identities_cannot_use_the_console(fleet):
    client = Client()
    client.force_login(UserFactory(username="router-1", role="router"))
    for name, url in page_urls(fleet).items():
        assert client.get(url).status_code == 403, name


def test_a_deactivated_user_is_logged_out(fleet, charlie):
    client = Client()
    client.force_login(charlie)
    charlie.is_active = False
    charlie.save()
    assert client.get("/").status_code == 302


def test_the_users_link_shows_for_admins_only(fleet, as_admin, as_operator):
    assert b'href="/users/"' in as_admin.get("/").content
    assert b'href="/users/"' not in as_operator.get("/").content
