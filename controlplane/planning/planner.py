"""Plans from the database: gather what a planning run reads, call the pure core, write the draft Plan.

The inputs: the service (model, SLOs), the workload (the latest profile with a sample of recent records, a
trace, or an explicit rate and lengths: the what-if), the fleet as it really is (ready nodes only, their
GPUs less those other services' running workers hold, tier prices from the database), the active plan,
and the constraints. Everything the plan was computed from goes into its ``inputs``, so it can be
recomputed and audited.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from django.conf import settings
from django.db import transaction

from controlplane.accounts.models import User
from controlplane.accounts.services import audit_record
from controlplane.common.errors import ApplicationError
from controlplane.fleet.models import Node, NodeStatus, Worker, WorkerStatus
from controlplane.planning.core import baselines as core
from controlplane.planning.core.hysteresis import (
    Decision,
    HysteresisPolicy,
    PlanFigures,
    bound_changes,
    should_propose,
)
from controlplane.planning.core.inputs import (
    ENGINES,
    ActivePlan,
    Constraints,
    NodeInventory,
    PlacedWorker,
    PlanningError,
    PlanRequest,
    ServiceSpec,
    Workload,
)
from controlplane.planning.core.solver import CAPACITY_SAMPLE, Infeasible
from controlplane.planning.models import Plan, PlanStatus
from controlplane.planning.specs import catalog_tiers, model_spec
from controlplane.telemetry.corrections import perf_corrections_for
from controlplane.traffic.models import RecordStatus, RequestRecord, Service, WorkloadProfile
from profiler.errors import ProfilerError, TraceError
from profiler.perfmodel import Corrections, default_efficiency
from profiler.traces import read_trace

SOURCES = ("profile", "trace", "explicit")
LENGTH_SAMPLE = 2000
_QUANTILE_POINTS = 1000
_Z90 = 1.2815515655446004  # the standard normal's 90th percentile


@dataclass(frozen=True)
class PlanParams:
    """What an operator (or the schedule) asks of a planning run."""

    source: str = "profile"
    objective: str = "cost"
    budget_usd_per_h: float | None = None
    power_cap_kw: float | None = None
    allowed_tiers: tuple[str, ...] | None = None
    allowed_tp: tuple[int, ...] | None = None
    headroom: float | None = None
    rate_rps: float | None = None
    lengths: tuple[tuple[int, ...], ...] | None = None
    prompt_tokens_p50: float | None = None
    prompt_tokens_p90: float | None = None
    output_tokens_p50: float | None = None
    output_tokens_p90: float | None = None
    trace_path: Path | None = None
    trace_format: str | None = None
    trace_name: str = ""
    verify: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Computed:
    """A planning run's answer (a plan or why there is none) and the inputs it read, as JSON."""

    outcome: core.PlanResult | Infeasible
    request: PlanRequest
    inputs: dict[str, Any]


def _bad(field_name: str, message: str) -> ApplicationError:
    return ApplicationError(message, fields={field_name: [message]})


# --- the workload ---


def _lognormal_sample(p50: float, p90: float | None) -> list[int]:
    """Lengths whose median is ``p50`` and 90th percentile ``p90`` (a log-normal's quantiles; one length
    when no p90 is given)."""
    if p90 is None or p90 <= p50:
        return [max(round(p50), 1)]
    sigma = math.log(p90 / p50) / _Z90
    quantiles = (np.arange(_QUANTILE_POINTS) + 0.5) / _QUANTILE_POINTS
    from scipy.stats import norm

    values = np.exp(math.log(p50) + sigma * norm.ppf(quantiles))
    return [max(round(float(v)), 1) for v in values]


def _paired(prompts: list[int], outputs: list[int], cache_share: float = 0.0) -> list[tuple[int, int, int]]:
    # Two independent samples paired by a fixed shuffle, so a long prompt does not always get a long answer.
    size = max(len(prompts), len(outputs))
    rng = random.Random(0)
    outputs = [outputs[i % len(outputs)] for i in range(size)]
    rng.shuffle(outputs)
    return [(p, o, int(p * cache_share)) for p, o in zip((prompts[i % len(prompts)] for i in range(size)),
                                                          outputs, strict=True)]


def _workload(service: Service, params: PlanParams, max_context: int) -> tuple[Workload, dict[str, Any]]:
    if params.source == "explicit":
        return _explicit_workload(params, max_context)
    if params.source == "trace":
        return _trace_workload(params, max_context)
    if params.source == "profile":
        return _profile_workload(service, params, max_context)
    raise _bad("source", f"Unknown source {params.source!r}; one of: {', '.join(SOURCES)}.")


def _explicit_workload(params: PlanParams, max_context: int) -> tuple[Workload, dict[str, Any]]:
    if params.rate_rps is None:
        raise _bad("rate_rps", "Required for an explicit workload.")
    rows: Sequence[tuple[int, int] | tuple[int, int, int]]
    if params.lengths:
        rows = [(int(r[0]), int(r[1]), int(r[2])) if len(r) > 2 else (int(r[0]), int(r[1])) for r in params.lengths]
    elif params.prompt_tokens_p50 and params.output_tokens_p50:
        rows = _paired(_lognormal_sample(params.prompt_tokens_p50, params.prompt_tokens_p90),
                       _lognormal_sample(params.output_tokens_p50, params.output_tokens_p90))
    else:
        raise _bad("lengths", "Give lengths, or prompt_tokens_p50 and output_tokens_p50.")
    return Workload.of(params.rate_rps, rows, max_context=max_context), {"source": "explicit"}


def _trace_workload(params: PlanParams, max_context: int) -> tuple[Workload, dict[str, Any]]:
    if params.trace_path is None or not params.trace_format:
        raise _bad("trace", "Upload a trace file and name its format.")
    sample: list[tuple[int, int, int]] = []
    rng = random.Random(0)
    count, served, first, last = 0, 0, math.inf, -math.inf
    try:
        for record in read_trace(params.trace_path, params.trace_format):
            count += 1
            if record.arrival_s is not None:
                first, last = min(first, record.arrival_s), max(last, record.arrival_s)
            if record.status != "ok":
                continue  # a failed request arrived (it counts in the rate) but its lengths say nothing
            row = (record.prompt_tokens, record.output_tokens, record.cached_prompt_tokens)
            # reservoir sampling: every record equally likely, in one pass over a trace of any size
            served += 1
            if len(sample) < LENGTH_SAMPLE:
                sample.append(row)
            else:
                slot = rng.randrange(served)
                if slot < LENGTH_SAMPLE:
                    sample[slot] = row
    except TraceError as exc:
        raise _bad("trace", str(exc)) from None
    if not sample:
        raise _bad("trace", "The trace has no requests.")
    rate = params.rate_rps
    if rate is None:
        if not last > first:
            raise _bad("rate_rps", "The trace has no arrival span to take a rate from: give rate_rps.")
        rate = count / (last - first)
    described = {"source": "trace", "trace": {"name": params.trace_name, "format": params.trace_format,
                                               "records": count, "span_s": last - first if last > first else None}}
    return Workload.of(rate, sample, max_context=max_context), described


def _profile_workload(service: Service, params: PlanParams, max_context: int) -> tuple[Workload, dict[str, Any]]:
    profile = WorkloadProfile.objects.filter(service=service).order_by("-window_end", "-id").first()
    if profile is None:
        raise _bad("source", f"Service {service.name} has no workload profile yet: give a trace or an explicit workload.")
    rate = params.rate_rps if params.rate_rps is not None else profile.arrival_rate_rps
    if not rate or rate <= 0:
        raise _bad("rate_rps", "The latest profile saw no traffic: give rate_rps for the what-if.")
    rows = list(
        RequestRecord.objects.filter(service=service, status=RecordStatus.OK)
        .order_by("-arrival_at")
        .values_list("prompt_tokens", "output_tokens", "cached_prompt_tokens")[:LENGTH_SAMPLE]
    )
    lengths_from = "records"
    if not rows:
        lengths_from = "profile percentiles"
        rows = _paired(_lognormal_sample(profile.prompt_tokens_p50 or 1.0, profile.prompt_tokens_p90),
                       _lognormal_sample(profile.output_tokens_p50 or 1.0, profile.output_tokens_p90),
                       profile.prefix_cache_share)
    described = {"source": "profile", "profile_id": profile.pk, "lengths_from": lengths_from,
                 "profile_window": [profile.window_start.isoformat(), profile.window_end.isoformat()]}
    return Workload.of(rate, rows, max_context=max_context), described


# --- the fleet ---


def inventory_for(service: Service) -> tuple[NodeInventory, ...]:
    """Ready nodes with the GPUs and ports other services' running workers leave free.

    A node an operator drained or cordoned, or one that went unreachable, is not available. This
    service's own workers hold nothing here: the plan may keep them or replace them.
    """
    tiers = catalog_tiers()
    nodes = list(Node.objects.filter(status=NodeStatus.READY).select_related("tier").order_by("name"))
    held_gpus: dict[int, set[int]] = {}
    held_ports: dict[int, set[int]] = {}
    busy = Worker.objects.filter(node__in=nodes).exclude(status=WorkerStatus.STOPPED)
    for node_id, service_id, gpu_ids, port in busy.values_list("node_id", "service_id", "gpu_ids", "port"):
        if service_id == service.pk:
            continue
        held_gpus.setdefault(node_id, set()).update(int(g) for g in gpu_ids or ())
        if port is not None:
            held_ports.setdefault(node_id, set()).add(int(port))
    default_engine = settings.CLEAVE_WORKER_ENGINE
    result = []
    for node in nodes:
        engine = str((node.labels or {}).get("engine") or default_engine)
        result.append(NodeInventory(
            name=node.name, tier=tiers[node.tier.name], gpu_count=node.gpu_count,
            free_gpu_ids=tuple(g for g in range(node.gpu_count) if g not in held_gpus.get(node.pk, set())),
            used_ports=tuple(sorted(held_ports.get(node.pk, set()))),
            engine=engine if engine in ENGINES else "vllm",
        ))
    return tuple(result)


def active_plan_of(service: Service) -> Plan | None:
    return Plan.objects.filter(service=service, status=PlanStatus.ACTIVE).first()


def _active(plan: Plan | None) -> ActivePlan | None:
    if plan is None or not plan.instances:
        return None
    workers = []
    for entry in plan.placement or ():
        for worker in entry.get("workers", ()):
            workers.append(PlacedWorker(
                node=str(entry["node"]), name=str(worker["name"]), role=str(worker["role"]),
                tier=str(worker.get("tier", "")), tp=int(worker.get("tp", 1)),
                gpu_ids=tuple(int(g) for g in worker.get("gpu_ids", ())), port=int(worker["port"]),
            ))
    return ActivePlan(
        instances=tuple((str(i["tier"]), int(i["tp"]), str(i["role"]), int(i["count"])) for i in plan.instances),
        local_prefill_threshold=int((plan.routing or {}).get("local_prefill_threshold") or 0),
        chunk_tokens=int((plan.predictions or {}).get("chunk_tokens") or 512),
        workers=tuple(workers),
        plan_id=plan.pk,
    )


# --- a planning run ---


def plan_compute(*, service: Service, params: PlanParams) -> Computed:
    """Gather the inputs and run the planner; writes nothing. Bad input raises ApplicationError naming the field."""
    try:
        arch = model_spec(service)
        spec = ServiceSpec(
            name=service.name, model=arch, ttft_s=service.ttft_slo_s, tpot_s=service.tpot_slo_s,
            dtype=service.dtype, attainment_target=service.attainment_target,
            slo_percentile=service.slo_percentile,
        )
        workload, described = _workload(service, params, arch.max_context)
        constraints = Constraints(
            budget_usd_per_h=params.budget_usd_per_h, power_cap_kw=params.power_cap_kw,
            min_instances_per_phase=service.min_instances_per_phase,
            allowed_tp=params.allowed_tp or Constraints().allowed_tp,
            allowed_tiers=params.allowed_tiers, headroom=params.headroom or Constraints().headroom,
        )
        active = active_plan_of(service)
        tiers = catalog_tiers()
        corrections = perf_corrections_for(service.model_name) if settings.PERF_CORRECTION_APPLY else Corrections()
        request = PlanRequest(
            service=spec, workload=workload, inventory=inventory_for(service), constraints=constraints,
            objective=params.objective, active=_active(active), known_tiers=tuple(tiers.values()),
            verify=params.verify, corrections=corrections,
        )
    except PlanningError as exc:
        raise _bad(exc.field or "non_field_errors", str(exc)) from None
    except ProfilerError as exc:
        raise _bad("service", f"Service {service.name} cannot be planned: {exc}") from None
    outcome = core.plan(request)
    inputs = _inputs_json(request, described, active, params)
    return Computed(outcome, request, inputs)


def _inputs_json(request: PlanRequest, described: dict[str, Any], active: Plan | None,
                 params: PlanParams) -> dict[str, Any]:
    service, workload, constraints = request.service, request.workload, request.constraints
    used_tiers = sorted({node.tier.name for node in request.inventory})
    efficiency: dict[str, Any] = {}
    for name in used_tiers:
        try:
            efficiency[name] = asdict(default_efficiency(name, "vllm"))
        except ProfilerError:
            efficiency[name] = None
    return {
        **described,
        "objective": request.objective,
        "service": {"name": service.name, "model": service.model.name, "dtype": service.dtype,
                    "ttft_slo_s": service.ttft_s, "tpot_slo_s": service.tpot_s,
                    "attainment_target": service.attainment_target, "slo_percentile": service.slo_percentile},
        "workload": workload.summary(),
        "lengths": [list(row) for row in zip(workload.prompt_tokens, workload.output_tokens,
                                             workload.cached_prompt_tokens, strict=True)],
        "constraints": {**asdict(constraints), "allowed_tiers": list(constraints.allowed_tiers)
                        if constraints.allowed_tiers is not None else None},
        "inventory": [{"node": n.name, "tier": n.tier.name, "gpu_count": n.gpu_count,
                       "free_gpu_ids": list(n.free_gpu_ids), "used_ports": list(n.used_ports), "engine": n.engine}
                      for n in request.inventory],
        "tiers": {t.name: {"price_usd_per_gpu_h": t.price_usd_per_gpu_h, "idle_w": t.idle_w, "tdp_w": t.tdp_w}
                  for t in request.known_tiers},
        "perf_model": {"engine": "vllm", "efficiency": efficiency, "corrections": request.corrections.as_list()},
        "active_plan": active.pk if active is not None else None,
        "simulation": {"verify": request.verify, "duration_s": request.sim_duration_s,
                       "max_requests": request.sim_max_requests, "seed": request.seed,
                       "max_retries": request.max_retries, "headroom_step": core.HEADROOM_STEP},
        "capacity_sample": CAPACITY_SAMPLE,
        **({"extra": params.extra} if params.extra else {}),
    }


def _raise_infeasible(infeasible: Infeasible) -> None:
    raise ApplicationError(infeasible.message, code="infeasible", fields=infeasible.fields or None,
                           http_status=422)


@transaction.atomic
def plan_save(*, actor: User | None, service: Service, computed: Computed, reason: str = "",
              system: str = "planner") -> Plan:
    """Write a computed plan as a draft, with its AuditEvent."""
    outcome = computed.outcome
    if isinstance(outcome, Infeasible):
        _raise_infeasible(outcome)
    assert isinstance(outcome, core.PlanResult)
    predictions = outcome.predictions()
    plan = Plan.objects.create(
        service=service, status=PlanStatus.DRAFT, objective=computed.request.objective, inputs=computed.inputs,
        instances=outcome.instances(), placement=outcome.placement.as_list(), routing=outcome.routing,
        predictions=predictions, baselines=outcome.baselines,
        predicted_cost_usd_per_h=predictions["cost_usd_per_h"], predicted_power_kw=predictions["power_kw"],
        reason=reason or predictions.get("note", ""), created_by=actor,
    )
    plan.routing = _addressed(outcome.routing, service, version=plan.pk)
    plan.save(update_fields=["routing"])
    audit_record(
        actor=actor, verb="plan.create", obj=plan, system=system,
        after={"status": plan.status, "objective": plan.objective, "source": computed.inputs.get("source"),
               "predicted_cost_usd_per_h": plan.predicted_cost_usd_per_h,
               "predicted_power_kw": plan.predicted_power_kw, "reason": plan.reason},
    )
    return plan


def _addressed(routing: dict[str, Any], service: Service, *, version: int) -> dict[str, Any]:
    """The routing plan with what a router needs to reach each worker: the service's id and each node's host."""
    hosts = {name: urlparse(url).hostname or "127.0.0.1" for name, url in Node.objects.values_list("name", "agent_url")}
    pools = {
        role: [{**entry, "host": hosts.get(str(entry.get("node")), "127.0.0.1")} for entry in entries]
        for role, entries in routing.get("pools", {}).items()
    }
    return {**routing, "pools": pools, "service_id": service.pk, "version": version}


def plan_create(*, actor: User | None, service: Service, params: PlanParams) -> Plan:
    """Compute a plan for ``service`` and write it as a draft. Infeasible: ApplicationError 422, nothing written."""
    computed = plan_compute(service=service, params=params)
    return plan_save(actor=actor, service=service, computed=computed)


# --- the scheduled replan ---


@dataclass(frozen=True)
class Replan:
    """What a scheduled replan did: the plan it proposed (None: none) and why."""

    plan: Plan | None
    decision: Decision


def plan_replan(*, service: Service, policy: HysteresisPolicy | None = None) -> Replan:
    """Replan ``service`` from its latest profile; propose only what hysteresis allows, a bounded step at a time."""
    active = active_plan_of(service)
    objective = active.objective if active is not None else "cost"
    policy = policy or HysteresisPolicy(min_saving=service.rebalance_min_saving, objective=objective)
    try:
        computed = plan_compute(service=service, params=PlanParams(source="profile", objective=objective))
    except ApplicationError as exc:
        return Replan(None, Decision(False, f"no replan: {exc.message}"))
    outcome = computed.outcome
    if isinstance(outcome, Infeasible):
        return Replan(None, Decision(False, f"no feasible plan: {outcome.message}"))
    current = outcome.baselines.get("active_plan")
    decision = should_propose(PlanFigures.of(current) if current else None, PlanFigures.of(outcome.predictions()),
                              policy)
    if not decision.propose:
        return Replan(None, decision)
    reason = f"scheduled replan: {decision.reason}"
    if active is not None and computed.request.active is not None and policy.max_changes_per_tier is not None:
        computed, reason = _bounded(computed, outcome, computed.request.active, policy.max_changes_per_tier, reason)
    plan = plan_save(actor=None, service=service, computed=computed, reason=reason, system="beat")
    return Replan(plan, decision)


def _bounded(computed: Computed, target: core.PlanResult, active: ActivePlan, max_per_tier: int,
             reason: str) -> tuple[Computed, str]:
    """The first bounded step toward ``target``, where it differs from the target and holds the SLO itself."""
    current = {(tier, tp, role): count for tier, tp, role, count in active.instances}
    wanted = {(str(i["tier"]), int(str(i["tp"])), str(i["role"])): int(str(i["count"])) for i in target.instances()}
    step = bound_changes(current, wanted, max_per_tier)
    if step == wanted:
        return computed, reason
    stepped = core.plan_step(computed.request, target, step)
    if stepped is None or not stepped.evaluation.meets_slo:
        return computed, f"{reason}; the whole change at once (no smaller step holds the SLO)"
    inputs = {**computed.inputs, "step_toward": {"instances": target.instances(),
                                                 "max_changes_per_tier": max_per_tier}}
    return (Computed(stepped, computed.request, inputs),
            f"{reason}; a step of at most {max_per_tier} instances per tier toward the target")


def lengths_from_rows(rows: Iterable[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """Explicit lengths from JSON rows of [prompt, output] or [prompt, output, cached]."""
    return tuple(tuple(int(v) for v in row) for row in rows)
