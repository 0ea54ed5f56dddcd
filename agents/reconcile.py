"""Desired against actual: the assignment the control plane pushes, checked, and the changes it asks for.

An assignment is a node's whole desired state at one generation. ``parse_assignment`` checks a body
against the node (its name, tier, GPUs, the agent's own port) and names every bad field the way the
control plane's API does (``workers[1].gpu_ids``). ``diff`` compares it with what runs: a worker whose
identity changed (role, engine, model, TP, GPUs, port, tier, dtype, engine args) is a different
process and restarts; one whose service, plan or routing alone changed is updated in place.
``prepare`` turns a worker into its Launch, the process it should be (argv and environment from the
engine's launcher, and a fingerprint to recognise it by). The Reconciler applies a diff through the
Supervisor, stopping before starting wherever an old worker holds a name, GPU or port a new one
needs, and says when a generation is applied.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import httpx

from agents.engines import EngineError, EngineLauncher, WorkerMetrics, WorkerSpec, launcher
from agents.engines.metrics import MetricsError
from profiler.perfmodel import DTYPES

if TYPE_CHECKING:
    from agents.state import PidRecord
    from agents.supervisor import Supervisor

log = logging.getLogger(__name__)

ROLES = ("prefill", "decode", "colocated", "router")
# Worker names become file names in the state directory, so they are held to a safe alphabet.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ENGINE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_WORKERS = 64
MAX_TP = 64
# The fields that make a worker a different process (the control plane's rollout uses the same list).
IDENTITY = ("role", "engine", "model", "tp", "gpu_ids", "port", "tier", "dtype", "engine_args")

EngineArg = str | int | float | bool


# Never handed down to engine processes.
SECRET_ENV = ("CLEAVE_BOOTSTRAP_TOKEN",)


class NoLauncherError(LookupError):
    """No registered launcher can run this worker; the worker is reported failed with this message."""


class AssignmentError(ValueError):
    """An assignment body that cannot be run; ``fields`` maps each bad field to what is wrong with it."""

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        self.fields = dict(fields)
        first, messages = next(iter(self.fields.items()))
        more = f" (and {len(self.fields) - 1} more)" if len(self.fields) > 1 else ""
        super().__init__(f"{first}: {messages[0]}{more}")


@dataclass(frozen=True)
class AssignedWorker:
    """One worker of an assignment, checked."""

    name: str
    role: str
    engine: str
    model: str
    tp: int
    gpu_ids: tuple[int, ...]
    port: int
    tier: str
    dtype: str = "bf16"
    service: str | None = None
    plan: int | None = None
    engine_args: Mapping[str, EngineArg] = field(default_factory=dict, hash=False)
    routing: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)

    def identity(self) -> tuple[Any, ...]:
        """What makes it this very process: equal identities may keep running across generations."""
        return (
            self.role, self.engine, self.model, self.tp, self.gpu_ids, self.port, self.tier, self.dtype,
            tuple(sorted(self.engine_args.items())),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The worker as an assignment carries it (what the state directory stores)."""
        body: dict[str, Any] = {
            "name": self.name, "role": self.role, "engine": self.engine, "model": self.model, "tp": self.tp,
            "gpu_ids": list(self.gpu_ids), "port": self.port, "tier": self.tier, "dtype": self.dtype,
            "service": self.service, "plan": self.plan, "engine_args": dict(self.engine_args),
        }  # fmt: skip
        if self.routing is not None:
            body["routing"] = dict(self.routing)
        return body

    def report(self, status: str) -> dict[str, Any]:
        """The worker as a heartbeat reports it."""
        return {
            "name": self.name, "role": self.role, "engine": self.engine, "model": self.model, "tp": self.tp,
            "gpu_ids": list(self.gpu_ids), "port": self.port, "status": status, "service": self.service,
            "plan": self.plan,
        }  # fmt: skip


@dataclass(frozen=True)
class Assignment:
    """A node's desired workers at one generation (0: nothing assigned yet)."""

    node: str
    generation: int
    workers: tuple[AssignedWorker, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "generation": self.generation, "workers": [w.to_json() for w in self.workers]}


@dataclass(frozen=True)
class NodeLimits:
    """What an assignment must fit: the node's name, tier and GPUs, and ports the agent itself holds."""

    name: str
    tier: str
    gpu_count: int
    default_engine: str = "sim"
    reserved_ports: frozenset[int] = frozenset()


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class _Checker:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def bad(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def _worker(raw: object, where: str, limits: NodeLimits, check: _Checker) -> AssignedWorker | None:
    if not isinstance(raw, dict):
        check.bad(where, "Each worker is a JSON object.")
        return None
    before = len(check.errors)
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        check.bad(f"{where}.name", "Required: 1 to 100 letters, digits, '.', '_' or '-', not starting with a sign.")
    role = raw.get("role")
    if role not in ROLES:
        check.bad(f"{where}.role", f"Must be one of: {', '.join(ROLES)}.")
    engine = raw.get("engine") or limits.default_engine
    if not isinstance(engine, str) or not ENGINE_PATTERN.match(engine):
        check.bad(f"{where}.engine", "Must be an engine name (lowercase letters, digits, '_', '-').")
    model = raw.get("model", "")
    if not isinstance(model, str) or len(model) > 100 or (not model and role != "router"):
        check.bad(f"{where}.model", "Required: a catalog model name of at most 100 characters.")
    tp = raw.get("tp", 1)
    if not _is_int(tp) or not 1 <= tp <= MAX_TP:
        check.bad(f"{where}.tp", f"Must be an integer from 1 to {MAX_TP}.")
    gpu_ids = raw.get("gpu_ids", [])
    if not isinstance(gpu_ids, list) or not all(_is_int(gpu) for gpu in gpu_ids):
        check.bad(f"{where}.gpu_ids", "Must be a list of GPU indices.")
    elif any(not 0 <= gpu < limits.gpu_count for gpu in gpu_ids):
        check.bad(f"{where}.gpu_ids", f"GPU indices must be within this node's 0..{limits.gpu_count - 1}.")
    elif len(set(gpu_ids)) != len(gpu_ids):
        check.bad(f"{where}.gpu_ids", "A GPU is listed twice.")
    elif role != "router" and _is_int(tp) and len(gpu_ids) != tp:
        check.bad(f"{where}.gpu_ids", f"Must hold one GPU per TP rank ({tp}).")
    port = raw.get("port")
    if not _is_int(port) or not 1 <= port <= 65535:
        check.bad(f"{where}.port", "Required: an integer from 1 to 65535.")
    elif port in limits.reserved_ports:
        check.bad(f"{where}.port", f"Port {port} is the agent's own.")
    tier = raw.get("tier") or limits.tier
    if tier != limits.tier:
        check.bad(f"{where}.tier", f"This node is {limits.tier}, not {str(tier)[:64]}.")
    dtype = raw.get("dtype") or "bf16"
    if dtype not in DTYPES:
        check.bad(f"{where}.dtype", f"Must be one of: {', '.join(DTYPES)}.")
    service = raw.get("service")
    if service is not None and (not isinstance(service, str) or not 0 < len(service) <= 100):
        check.bad(f"{where}.service", "Must be a service name or null.")
    plan = raw.get("plan")
    if plan is not None and (not _is_int(plan) or plan < 1):
        check.bad(f"{where}.plan", "Must be a plan id or null.")
    engine_args = raw.get("engine_args") or {}
    if not isinstance(engine_args, dict):
        check.bad(f"{where}.engine_args", "Must be a JSON object.")
    else:
        for key, value in engine_args.items():
            if not isinstance(value, str | int | float) or (isinstance(value, float) and not math.isfinite(value)):
                check.bad(f"{where}.engine_args.{key}", "Must be a string, a finite number or a boolean.")
    routing = raw.get("routing")
    if routing is not None and not isinstance(routing, dict):
        check.bad(f"{where}.routing", "Must be a JSON object or null.")
    if len(check.errors) > before:
        return None
    return AssignedWorker(
        name=name, role=role, engine=engine, model=model, tp=tp, gpu_ids=tuple(gpu_ids), port=port,  # type: ignore[arg-type]
        tier=tier, dtype=dtype, service=service, plan=plan, engine_args=dict(engine_args), routing=routing,
    )  # fmt: skip


def parse_assignment(body: object, limits: NodeLimits) -> Assignment:
    """The assignment in a PUT body, checked against the node; AssignmentError naming every bad field."""
    check = _Checker()
    if not isinstance(body, dict):
        raise AssignmentError({"body": ["The body is a JSON object: node, generation, workers."]})
    if body.get("node") != limits.name:
        check.bad("node", f"This agent runs node {limits.name}.")
    generation = body.get("generation")
    if not _is_int(generation) or generation < 1:
        check.bad("generation", "Required: an integer of at least 1.")
    raws = body.get("workers")
    workers: list[AssignedWorker] = []
    if not isinstance(raws, list):
        check.bad("workers", "Required: a list of workers.")
    elif len(raws) > MAX_WORKERS:
        check.bad("workers", f"At most {MAX_WORKERS} workers a node.")
    else:
        seen_names: dict[str, int] = {}
        seen_ports: dict[int, int] = {}
        seen_gpus: dict[int, int] = {}
        for index, raw in enumerate(raws):
            where = f"workers[{index}]"
            worker = _worker(raw, where, limits, check)
            if worker is None:
                continue
            if worker.name in seen_names:
                check.bad(f"{where}.name", f"Duplicate of workers[{seen_names[worker.name]}].name.")
            if worker.port in seen_ports:
                check.bad(f"{where}.port", f"Port {worker.port} is also workers[{seen_ports[worker.port]}]'s.")
            shared = [gpu for gpu in worker.gpu_ids if gpu in seen_gpus]
            if shared:
                check.bad(f"{where}.gpu_ids", f"GPU {shared[0]} is also workers[{seen_gpus[shared[0]]}]'s.")
            seen_names.setdefault(worker.name, index)
            seen_ports.setdefault(worker.port, index)
            for gpu in worker.gpu_ids:
                seen_gpus.setdefault(gpu, index)
            workers.append(worker)
    if check.errors:
        raise AssignmentError(check.errors)
    return Assignment(node=limits.name, generation=generation, workers=tuple(workers))  # type: ignore[arg-type]


def clash(old: AssignedWorker, new: AssignedWorker) -> bool:
    """Must ``old`` be gone before ``new`` starts? (same name, same port, or a shared GPU)"""
    return old.name == new.name or old.port == new.port or bool(set(old.gpu_ids) & set(new.gpu_ids))


@dataclass(frozen=True)
class Changes:
    """What moves a node from the workers it runs to an assignment's."""

    start: tuple[AssignedWorker, ...] = ()
    stop: tuple[str, ...] = ()
    update: tuple[AssignedWorker, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.start or self.stop or self.update)


def diff(running: Mapping[str, AssignedWorker], desired: Sequence[AssignedWorker]) -> Changes:
    """The workers to start, stop (by name) and update in place to go from ``running`` to ``desired``."""
    wanted = {worker.name: worker for worker in desired}
    stop = [name for name, worker in running.items()
            if name not in wanted or wanted[name].identity() != worker.identity()]  # fmt: skip
    start = [worker for worker in desired if worker.name not in running or worker.name in stop]
    kept = [worker for worker in desired if worker.name in running and worker.name not in stop]
    update = [worker for worker in kept if worker.to_json() != running[worker.name].to_json()]
    return Changes(start=tuple(start), stop=tuple(sorted(stop)), update=tuple(update))


@dataclass(frozen=True)
class Launch:
    """Everything needed to run one worker, decided before it starts."""

    spec: WorkerSpec
    launcher: EngineLauncher = field(compare=False)
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False, compare=False, hash=False)
    health_url: str
    metrics_url: str
    fingerprint: str

    async def scrape(self, http: httpx.AsyncClient) -> WorkerMetrics | None:
        """One read of the worker's metrics; None when it does not answer, or answers garbage."""
        try:
            response = await http.get(self.metrics_url)
            if response.status_code != 200:
                return None
            return self.launcher.parse_metrics(response.text)
        except (httpx.HTTPError, MetricsError):
            return None


def prepare(worker: AssignedWorker, *, host: str, time_scale: float | None = None, routing_file: Path | None = None) -> Launch:
    """How to run ``worker``, listening on ``host``: NoLauncherError when nobody can, EngineError when its spec is bad.

    ``time_scale`` goes to sim workers whose engine args do not set one; a router is told where its
    routing plan is (``routing_file``). The fingerprint tells a process started this way from any other.
    """
    engine = "router" if worker.role == "router" else worker.engine
    try:
        chosen = launcher(engine)
    except EngineError as error:
        raise NoLauncherError(f"no launcher for {worker.role} worker {worker.name}: {error}") from None
    except Exception as error:  # a broken engine plug-in fails its workers, not the agent
        log.exception("the engine launchers cannot be loaded")
        raise NoLauncherError(f"the engine launchers cannot be loaded: {error!r}") from None
    args: dict[str, Any] = dict(worker.engine_args)
    if engine == "sim" and time_scale is not None:
        args.setdefault("time_scale", time_scale)
    if worker.role == "router" and routing_file is not None:
        args["routing_file"] = str(routing_file)
    try:
        spec = WorkerSpec(
            name=worker.name, role=worker.role, engine=worker.engine, model=worker.model, tp=worker.tp,
            gpu_ids=worker.gpu_ids, port=worker.port, tier=worker.tier, dtype=worker.dtype, engine_args=args,
        )  # fmt: skip
    except EngineError as error:
        if worker.role == "router":  # engines that predate routers as workers
            raise NoLauncherError(f"routers cannot run as workers here: {error}") from None
        raise
    argv = tuple(chosen.command(spec, host=host))
    base = {key: value for key, value in os.environ.items() if key not in SECRET_ENV}
    env = chosen.environment(spec, base, host=host)
    identity = {"argv": argv, "gpus": env.get("CUDA_VISIBLE_DEVICES", "")}
    return Launch(
        spec=spec, launcher=chosen, argv=argv, env=env, health_url=chosen.health_url(spec, host),
        metrics_url=chosen.metrics_url(spec, host),
        fingerprint=hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32],
    )  # fmt: skip


class Reconciler:
    """Applies assignments through the Supervisor and tracks the generation the node has applied.

    A generation is applied once every worker it removes has stopped and every worker it keeps or
    adds has been launched (or found unlaunchable, which its status says): readiness is reported per
    worker, not folded into the generation.
    """

    def __init__(self, supervisor: Supervisor, *, on_applied: Callable[[int], None] | None = None) -> None:
        self.supervisor = supervisor
        self.desired = Assignment(node="", generation=0)
        self.applied_generation = 0
        self._on_applied = on_applied
        self._waiter: asyncio.Task[None] | None = None

    def apply(self, assignment: Assignment, *, adopt: Mapping[str, PidRecord] | None = None) -> Changes:
        """Start moving to ``assignment`` at once; returns the changes it set going."""
        supervisor = self.supervisor
        changes = diff(supervisor.running(), assignment.workers)
        self.desired = assignment
        stopped = [supervisor.stop(name) for name in changes.stop]
        for worker in changes.update:
            supervisor.update(worker)
        for worker in changes.start:
            supervisor.start(worker, adopt=(adopt or {}).get(worker.name))
        if not changes.empty:
            log.info(
                "generation %d: starting %s, stopping %s, updating %s", assignment.generation,
                [w.name for w in changes.start] or "none", list(changes.stop) or "none",
                [w.name for w in changes.update] or "none",
            )  # fmt: skip
        if self._waiter is not None:
            self._waiter.cancel()
        self._waiter = asyncio.get_running_loop().create_task(
            self._mark_applied(assignment.generation, stopped), name=f"applied-{assignment.generation}"
        )
        return changes

    async def _mark_applied(self, generation: int, stopped: Sequence[asyncio.Event]) -> None:
        for event in stopped:
            await event.wait()
        await self.supervisor.launched([worker.name for worker in self.desired.workers])
        if generation > self.applied_generation:
            self.applied_generation = generation
            log.info("generation %d applied", generation)
            if self._on_applied is not None:
                self._on_applied(generation)
