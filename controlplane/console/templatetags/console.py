"""Template helpers: figures, links that keep the query, and numbers with units (a dash where unknown)."""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()
DASH = "—"


@register.simple_tag(takes_context=True)
def figure(context: template.Context, element_id: str, css: str = "chart") -> SafeString:
    """A figure's element and its JSON (from figures.py, already safe inside a script element)."""
    data = (context.get("figures") or {}).get(element_id)
    if data is None:
        return format_html('<div class="{}" id="{}"></div>', css, element_id)
    return format_html(
        '<div class="{}" id="{}"></div><script type="application/json" data-figure-for="{}">{}</script>',
        # figures.to_json escaped <, > and &, so the JSON cannot end the script element early.
        css, element_id, element_id, mark_safe(data),
    )


@register.simple_tag(takes_context=True)
def query_with(context: template.Context, **changes: Any) -> str:
    """The current query string with `changes` applied (None removes a key), e.g. for pagination links."""
    request: HttpRequest = context["request"]
    query = request.GET.copy()
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = str(value)
    return f"?{query.urlencode()}"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@register.filter
def pct(value: Any, digits: int = 1) -> str:
    number = _number(value)
    return DASH if number is None else f"{number * 100:.{digits}f}%"


@register.filter
def usd(value: Any, digits: int = 2) -> str:
    number = _number(value)
    if number is None:
        return DASH
    return f"-${-number:,.{digits}f}" if number < 0 else f"${number:,.{digits}f}"


@register.filter
def num(value: Any, digits: int = 1) -> str:
    number = _number(value)
    return DASH if number is None else f"{number:,.{digits}f}"


@register.filter
def get(mapping: Any, key: Any) -> Any:
    """mapping[key] in a template, or None."""
    try:
        return mapping[key]
    except (KeyError, IndexError, TypeError):
        return None


@register.filter
def label(value: Any) -> str:
    """A snake_case key as words."""
    return str(value).replace("_", " ")


@register.simple_tag(takes_context=True)
def page_query(context: template.Context, page: Any, number: int) -> str:
    """The current query string pointing `page`'s list (its own parameter, see views.base.paginate) at `number`."""
    return query_with(context, **{getattr(page, "param", "page"): number})


@register.filter
def ago(moment: Any) -> str:
    """How long ago `moment` was, to the second under a minute (heartbeats come every few seconds)."""
    if moment is None:
        return "never"
    seconds = max(0, int((timezone.now() - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"
