"""JSON-safe snapshots of model rows, for the audit log's before/after."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.forms.models import model_to_dict


def snapshot(obj: models.Model, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The row's fields (or the named ones) as plain JSON values; secrets never belong in `fields`."""
    data = model_to_dict(obj, fields=list(fields) if fields is not None else None)
    data["id"] = obj.pk
    result: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return result
