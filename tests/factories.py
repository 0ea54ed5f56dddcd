"""factory_boy factories for the rows tests need."""

from __future__ import annotations

import factory
from factory.django import DjangoModelFactory

from controlplane.accounts.models import User
from controlplane.fleet.models import GpuTier, Node
from controlplane.planning.models import Plan
from controlplane.traffic.models import Service


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    role = "viewer"
    password = factory.django.Password("correct-horse-battery-staple")


def tier(name: str = "H100-SXM-80GB") -> GpuTier:
    """Tiers are seeded by a data migration; tests use the real rows."""
    return GpuTier.objects.get(name=name)


class NodeFactory(DjangoModelFactory):
    class Meta:
        model = Node

    name = factory.Sequence(lambda n: f"node-{n:03d}")
    tier = factory.LazyFunction(tier)
    gpu_count = 8


class ServiceFactory(DjangoModelFactory):
    class Meta:
        model = Service

    name = factory.Sequence(lambda n: f"chat-{n}")
    model_name = "llama-3.1-8b"
    ttft_slo_s = 1.0
    tpot_slo_s = 0.1


class PlanFactory(DjangoModelFactory):
    class Meta:
        model = Plan

    service = factory.SubFactory(ServiceFactory)
    status = "draft"
