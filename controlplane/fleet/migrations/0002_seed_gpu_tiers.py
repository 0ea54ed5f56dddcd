"""Seed the GPU tiers from profiler.catalog, the one source of truth for hardware numbers."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

from django.db import migrations


def seed_tiers(apps, schema_editor):
    from profiler.catalog import TIERS

    GpuTier = apps.get_model("fleet", "GpuTier")
    for tier in TIERS.values():
        values = asdict(tier)
        name = values.pop("name")
        values["price_usd_per_gpu_h"] = Decimal(str(values["price_usd_per_gpu_h"]))
        GpuTier.objects.update_or_create(name=name, defaults=values)


def unseed_tiers(apps, schema_editor):
    from profiler.catalog import TIERS

    apps.get_model("fleet", "GpuTier").objects.filter(name__in=list(TIERS), nodes__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("fleet", "0001_initial")]

    operations = [migrations.RunPython(seed_tiers, unseed_tiers)]
