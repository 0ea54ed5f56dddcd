"""The base for writable serializers: a key the client may not write is an error, not silently dropped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.db import models
from rest_framework import serializers

M = TypeVar("M", bound=models.Model)


class StrictModelSerializer(serializers.ModelSerializer[M]):
    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(self.initial_data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            refused = {
                name: ["Read-only." if name in self.fields else "Unknown field."]
                for name in self.initial_data
                if name not in writable
            }
            if refused:
                raise serializers.ValidationError(refused)
        return super().validate(attrs)
