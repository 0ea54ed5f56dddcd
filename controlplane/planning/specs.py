"""Rows to the pure core's dataclasses: GPU tiers (with operator-edited prices) and model architectures.

The core (`profiler`, `planning/core`) takes plain dataclasses; this is where database rows become them.
"""

from __future__ import annotations

from controlplane.fleet.models import GpuTier as GpuTierRow
from controlplane.traffic.models import Service
from profiler import catalog
from profiler.catalog import GpuTier, ModelArch
from profiler.errors import UnknownTierError


def tier_spec(row: GpuTierRow) -> GpuTier:
    """The catalog dataclass for a tier row, with the row's (operator-set) price."""
    return GpuTier(
        name=row.name, vendor=row.vendor, bf16_tflops=row.bf16_tflops, fp8_tflops=row.fp8_tflops,
        hbm_bandwidth_gbps=row.hbm_bandwidth_gbps, memory_gb=row.memory_gb, tdp_w=row.tdp_w, idle_w=row.idle_w,
        link_bandwidth_gbps=row.link_bandwidth_gbps, link_kind=row.link_kind,
        price_usd_per_gpu_h=float(row.price_usd_per_gpu_h), source=row.source,
    )


def tier_specs() -> dict[str, GpuTier]:
    """Every tier in the database, by name."""
    return {row.name: tier_spec(row) for row in GpuTierRow.objects.all()}


def tier_spec_named(name: str) -> GpuTier:
    row = GpuTierRow.objects.filter(name=name).first()
    if row is None:
        known = ", ".join(GpuTierRow.objects.order_by("name").values_list("name", flat=True))
        raise UnknownTierError(f"unknown GPU tier {name!r}; known tiers: {known}")
    return tier_spec(row)


def model_spec(service: Service) -> ModelArch:
    """The architecture a service serves: its own (for a model the catalog lacks) or the catalog's."""
    if service.architecture:
        return ModelArch(name=service.model_name, source=f"service {service.name}", **service.architecture)
    return model_spec_named(service.model_name)


def model_spec_named(name: str) -> ModelArch:
    """A catalog model by name (UnknownModelError lists the known ones)."""
    return catalog.model(name)
