"""The tiers in the database are the catalog's, seeded by a data migration."""

from __future__ import annotations

import pytest

from controlplane.fleet.models import GpuTier
from profiler.catalog import TIERS

pytestmark = pytest.mark.django_db

NAMES = ["H100-SXM-80GB", "H200-SXM-141GB", "B200-SXM-180GB", "A100-SXM-80GB", "L40S-48GB", "L4-24GB", "A10G-24GB", "MI300X-192GB"]


def test_every_catalog_tier_is_seeded_with_its_numbers():
    rows = {tier.name: tier for tier in GpuTier.objects.all()}
    assert sorted(rows) == sorted(NAMES)
    for name, spec in TIERS.items():
        row = rows[name]
        assert (row.bf16_tflops, row.fp8_tflops, row.hbm_bandwidth_gbps, row.memory_gb, row.tdp_w) == (
            spec.bf16_tflops, spec.fp8_tflops, spec.hbm_bandwidth_gbps, spec.memory_gb, spec.tdp_w,
        )
        assert float(row.price_usd_per_gpu_h) == spec.price_usd_per_gpu_h
        assert row.source


def test_gpus_without_fp8_have_none():
    assert GpuTier.objects.get(name="A100-SXM-80GB").fp8_tflops is None
    assert GpuTier.objects.get(name="A10G-24GB").fp8_tflops is None


def test_hardware_numbers_are_read_only_in_the_api(api_as, alice):
    response = api_as(alice).patch("/api/v1/tiers/H100-SXM-80GB/", {"bf16_tflops": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"bf16_tflops": ["Read-only."]}
    assert GpuTier.objects.get(name="H100-SXM-80GB").bf16_tflops == TIERS["H100-SXM-80GB"].bf16_tflops
