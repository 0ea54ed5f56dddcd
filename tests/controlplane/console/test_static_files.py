"""plotly.js comes from our own static files (the installed plotly package's copy), never from a CDN."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_plotly_js_and_the_consoles_script_are_static_files():
    assert finders.find("plotly/plotly.min.js")
    assert finders.find("console/console.js")
    assert finders.find("console/console.css")


def test_pages_load_scripts_from_our_own_origin_only(fleet, as_viewer):
    body = as_viewer.get("/").content.decode()
    assert '<script src="/static/plotly/plotly.min.js">' in body
    assert "cdn" not in body.lower()
    assert "https://" not in body
