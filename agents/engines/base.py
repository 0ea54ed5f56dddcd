"""What every engine shares: the worker spec the control plane pushes, and the launcher interface.

A launcher turns a WorkerSpec into the argv and environment of one engine process, says where its
health and metrics live, and reads its Prometheus text into WorkerMetrics. It starts nothing itself:
the node agent owns the processes. Each engine is one module of this package defining one
EngineLauncher subclass with a ``name``; defining the class registers it (see ``agents.engines``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from agents.engines.metrics import WorkerMetrics

# The roles an inference engine plays; a router is a worker too, run by its own launcher, on no GPU.
ENGINE_ROLES = ("prefill", "decode", "colocated")
ROLES = (*ENGINE_ROLES, "router")

EngineArg = str | int | float | bool

# Every registered launcher, by engine name; filled as launcher classes are defined.
REGISTRY: dict[str, type[EngineLauncher]] = {}


class EngineError(ValueError):
    """A worker spec an engine cannot run, or an engine nobody registered; the message names the field."""


@dataclass(frozen=True)
class WorkerSpec:
    """One worker of an assignment: what the node agent must keep running.

    ``gpu_ids`` are the node's GPU indices the worker owns, one per TP rank. ``engine_args`` carries
    extra, engine-specific settings (for the sim: ``time_scale``, ``kv_link``...; for vLLM: any
    ``vllm serve`` flag by its snake_case name); each launcher documents the keys it knows.
    """

    name: str
    role: str
    engine: str
    model: str
    tp: int
    gpu_ids: tuple[int, ...]
    port: int
    tier: str
    dtype: str = "bf16"
    engine_args: Mapping[str, EngineArg] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise EngineError("worker name must not be empty")
        if self.role not in ROLES:
            raise EngineError(
                f"worker {self.name}: unknown role {self.role!r}; known roles: {', '.join(ROLES)}"
            )
        if len(set(self.gpu_ids)) != len(self.gpu_ids) or any(gpu < 0 for gpu in self.gpu_ids):
            raise EngineError(f"worker {self.name}: gpu_ids {list(self.gpu_ids)} must be distinct and >= 0")
        if self.role in ENGINE_ROLES and self.tp < 1:
            raise EngineError(f"worker {self.name}: tp must be >= 1, got {self.tp}")
        if self.role in ENGINE_ROLES and len(self.gpu_ids) != self.tp:
            raise EngineError(
                f"worker {self.name}: gpu_ids {list(self.gpu_ids)} must hold one GPU per TP rank ({self.tp})"
            )
        if not 1 <= self.port <= 65535:
            raise EngineError(f"worker {self.name}: port must be in 1..65535, got {self.port}")
        for key, value in self.engine_args.items():
            if not isinstance(value, str | int | float | bool):
                raise EngineError(
                    f"worker {self.name}: engine_args[{key!r}] must be a string, number or boolean, "
                    f"got {type(value).__name__}"
                )


class EngineLauncher(ABC):
    """How to run one kind of engine: its command line, environment, endpoints and metric names."""

    name: ClassVar[str]
    # The worker roles this engine can play.
    roles: ClassVar[tuple[str, ...]] = ENGINE_ROLES

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        engine = cls.__dict__.get("name")
        # A module run as a script (``python -m agents.engines.sim``) defines its class a second time.
        if isinstance(engine, str) and cls.__module__ != "__main__":
            if engine in REGISTRY and REGISTRY[engine] is not cls:
                raise EngineError(f"engine {engine!r} is registered twice: {REGISTRY[engine]!r} and {cls!r}")
            REGISTRY[engine] = cls

    @abstractmethod
    def command(self, spec: WorkerSpec, *, host: str = "127.0.0.1") -> list[str]:
        """The argv that starts the worker, listening on ``host``:``spec.port``."""

    def environment(
        self, spec: WorkerSpec, base: Mapping[str, str], *, host: str | None = None
    ) -> dict[str, str]:
        """The worker's environment: ``base`` with CUDA_VISIBLE_DEVICES set to the worker's GPUs.

        GPU ids are NVML's indices, so CUDA is told to number devices by PCI bus as NVML does.
        ``host`` is the address the worker listens on, for engines that advertise it to peers.
        """
        env = dict(base)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in spec.gpu_ids)
        return env

    def health_url(self, spec: WorkerSpec, host: str = "127.0.0.1") -> str:
        """The URL that answers 200 once the worker serves."""
        return f"http://{_url_host(host)}:{spec.port}/health"

    def metrics_url(self, spec: WorkerSpec, host: str = "127.0.0.1") -> str:
        """The URL of the worker's Prometheus text."""
        return f"http://{_url_host(host)}:{spec.port}/metrics"

    def base_url(self, spec: WorkerSpec, host: str = "127.0.0.1") -> str:
        """The OpenAI-compatible API root (``.../v1``) a router sends requests to."""
        return f"http://{_url_host(host)}:{spec.port}/v1"

    @abstractmethod
    def parse_metrics(self, text: str) -> WorkerMetrics:
        """The engine's ``/metrics`` text read into the one shape every engine shares."""

    def check(self, spec: WorkerSpec) -> None:
        """Raise EngineError when this launcher cannot run ``spec``."""
        if spec.engine != self.name:
            raise EngineError(
                f"worker {spec.name}: engine {spec.engine!r} given to the {self.name!r} launcher"
            )
        if spec.role not in self.roles:
            raise EngineError(
                f"worker {spec.name}: the {self.name!r} engine cannot play role {spec.role!r}; "
                f"it plays {', '.join(self.roles)}"
            )


def _url_host(host: str) -> str:
    # A wildcard bind address is not an address to connect to; a bare IPv6 address needs brackets.
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def flag_args(args: Mapping[str, EngineArg], skip: Iterable[str] = ()) -> list[str]:
    """Engine args as command-line flags: ``max_model_len=8192`` -> ``--max-model-len 8192``.

    True gives a bare flag, False leaves it out; keys in ``skip`` (those the launcher handles itself)
    are left out. Keys come out sorted so the same spec always gives the same argv.
    """
    skipped = set(skip)
    argv: list[str] = []
    for key in sorted(args):
        if key in skipped:
            continue
        value = args[key]
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False:
            argv.extend([flag, str(value)])
    return argv


def side_port(spec: WorkerSpec, base_port: int, key: str) -> int:
    """A per-worker port for an engine's side channel, unique among the workers of one node.

    ``engine_args[key]`` wins. Otherwise ``base_port + 16 * lowest GPU id``: no two workers of a node
    share a GPU, and engines that open one port per TP rank (base + rank) stay inside their 16.
    """
    given = spec.engine_args.get(key)
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int | str) or not str(given).isdigit():
            raise EngineError(
                f"worker {spec.name}: engine_args[{key!r}] must be a port number, got {given!r}"
            )
        return int(given)
    return base_port + 16 * min(spec.gpu_ids)
