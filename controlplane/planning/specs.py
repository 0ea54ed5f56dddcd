"""Rows of the database turned into the pure core's dataclasses, so operators' edits (prices, a service's
own architecture) reach the planner, the simulator and the profiler."""

from __future__ import annotations

from controlplane.fleet.models import GpuTier
from controlplane.traffic.models import Service
from profiler import catalog
from profiler.errors import UnknownTierError


def catalog_tier(row: GpuTier) -> catalog.GpuTier:
    """A GpuTier row as profiler.catalog.GpuTier: the same fields, the price as a float."""
    return catalog.GpuTier(
        name=row.name,
        vendor=row.vendor,
        bf16_tflops=row.bf16_tflops,
        fp8_tflops=row.fp8_tflops,
        hbm_bandwidth_gbps=row.hbm_bandwidth_gbps,
        memory_gb=row.memory_gb,
        tdp_w=row.tdp_w,
        idle_w=row.idle_w,
        link_bandwidth_gbps=row.link_bandwidth_gbps,
        link_kind=row.link_kind,
        price_usd_per_gpu_h=float(row.price_usd_per_gpu_h),
        source=row.source,
    )


def catalog_tiers() -> dict[str, catalog.GpuTier]:
    """Every tier in the database, by name."""
    return {row.name: catalog_tier(row) for row in GpuTier.objects.all()}


def catalog_tier_named(name: str) -> catalog.GpuTier:
    """One tier by name; UnknownTierError lists the tiers the database has."""
    row = GpuTier.objects.filter(name=name).first()
    if row is None:
        known = ", ".join(GpuTier.objects.order_by("name").values_list("name", flat=True))
        raise UnknownTierError(f"unknown GPU tier {name!r}; known tiers: {known}")
    return catalog_tier(row)


def model_spec(service: Service) -> catalog.ModelArch:
    """The architecture a service serves: its own (for a model the catalog lacks) or the catalog's."""
    if service.architecture:
        return catalog.ModelArch(name=service.model_name, source=f"service {service.name}", **service.architecture)
    return catalog.model(service.model_name)
