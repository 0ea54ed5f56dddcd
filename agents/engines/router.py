"""The router as a worker: ``python -m agents.router`` on no GPU, run by the node agent like an engine.

The node agent writes the router worker's routing JSON to a file, passes its path as
``engine_args["routing_file"]``, and rewrites it (temp file + rename) when only the routing changes;
the router reloads it on its own. The control plane token never goes on the command line: the router
reads ``CLEAVE_ROUTER_TOKEN`` from its environment, or the file ``token_file`` names. By default, a
routing file in the agent's state layout (``<state>/routing/<name>.json``) gives the agent's
``<state>/credentials.json`` as the token file: the router then reports with the node token and to
the control plane the agent registered with, and follows the agent when it renews its token.

engine_args keys (each becomes the router flag of the same name): routing_file (required),
control_plane, service_id, token_file, spool_dir (default: ``<routing file>.spool`` beside the
routing file), spool_max_mb, max_queue, worker_timeout_s, connect_timeout_s, poll_s, batch_records,
flush_s, require_api_key (a boolean: ``--require-api-key`` or ``--no-require-api-key``),
breaker_failures, breaker_cool_off_s, log_level. A router serves whatever engine its workers run, so
the spec's ``engine`` may name theirs; the spec's model is the plan's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from agents.engines.base import EngineError, EngineLauncher, WorkerSpec, flag_args
from agents.engines.metrics import Histogram, WorkerMetrics, read_samples

ENGINE_ARGS = frozenset(
    {
        "routing_file",
        "control_plane",
        "service_id",
        "token_file",
        "spool_dir",
        "spool_max_mb",
        "max_queue",
        "worker_timeout_s",
        "connect_timeout_s",
        "poll_s",
        "batch_records",
        "flush_s",
        "require_api_key",
        "breaker_failures",
        "breaker_cool_off_s",
        "log_level",
    }
)
_ROOT = Path(__file__).resolve().parents[2]


class RouterLauncher(EngineLauncher):
    """Runs ``python -m agents.router`` with this interpreter."""

    name: ClassVar[str] = "router"
    roles: ClassVar[tuple[str, ...]] = ("router",)

    def check(self, spec: WorkerSpec) -> None:
        # Not the base check: a router's spec carries its workers' engine name, not "router".
        if spec.role not in self.roles:
            raise EngineError(f"worker {spec.name}: the router launcher runs routers, not {spec.role} workers")
        unknown = sorted(set(spec.engine_args) - ENGINE_ARGS)
        if unknown:
            raise EngineError(
                f"worker {spec.name}: the router does not know engine_args {', '.join(unknown)}; "
                f"known: {', '.join(sorted(ENGINE_ARGS))}"
            )
        routing_file = spec.engine_args.get("routing_file")
        if not isinstance(routing_file, str) or not routing_file:
            raise EngineError(f"worker {spec.name}: engine_args['routing_file'] must name the routing JSON file")
        require = spec.engine_args.get("require_api_key")
        if require is not None and not isinstance(require, bool):
            raise EngineError(f"worker {spec.name}: engine_args['require_api_key'] must be a boolean")

    def command(self, spec: WorkerSpec, *, host: str = "127.0.0.1") -> list[str]:
        self.check(spec)
        args = dict(spec.engine_args)
        routing_file = str(args.pop("routing_file"))
        args.setdefault("spool_dir", routing_file.removesuffix(".json") + ".spool")
        folder = Path(routing_file).parent
        if folder.name == "routing":
            args.setdefault("token_file", str(folder.parent / "credentials.json"))
        require = args.pop("require_api_key", None)
        argv = [
            sys.executable, "-m", "agents.router", "--port", str(spec.port), "--host", host,
            "--routing-file", routing_file, *flag_args(args),
        ]  # fmt: skip
        if require is not None:
            argv.append("--require-api-key" if require else "--no-require-api-key")
        return argv

    def environment(
        self, spec: WorkerSpec, base: Mapping[str, str], *, host: str | None = None
    ) -> dict[str, str]:
        env = dict(base)
        env["CUDA_VISIBLE_DEVICES"] = ""  # a router needs no GPU
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(_ROOT) + (os.pathsep + path if path else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def parse_metrics(self, text: str) -> WorkerMetrics:
        """The router's metrics in the engines' shape: requests in flight, tokens, TTFT and TPOT."""
        samples = read_samples(text)
        requests = samples.get("cleave_router_requests_total", ())
        ok = sum(value for labels, value in requests if labels.get("status") == "ok")

        def total(name: str) -> float:
            return sum(value for _, value in samples.get(name, ()))

        return WorkerMetrics(
            requests_running=round(total("cleave_router_queue_depth")),
            requests_waiting=0,
            prompt_tokens_total=total("cleave_router_prompt_tokens_total"),
            generation_tokens_total=total("cleave_router_generation_tokens_total"),
            requests_finished_total=ok,
            ttft_seconds=_histogram(samples, "cleave_router_ttft_seconds"),
            itl_seconds=_histogram(samples, "cleave_router_tpot_seconds"),
            info={"role": "router"},
        )


def _histogram(samples: Mapping[str, list[tuple[dict[str, str], float]]], name: str) -> Histogram:
    # The router keeps one histogram per (service, pool); summed bucket by bucket, they are the router's.
    by_bound: dict[float, float] = {}
    for labels, value in samples.get(name + "_bucket", ()):
        bound = float(labels.get("le", "+Inf"))
        by_bound[bound] = by_bound.get(bound, 0.0) + value
    if not by_bound:
        return Histogram()
    bounds = tuple(sorted(by_bound))
    return Histogram(
        bounds,
        tuple(by_bound[bound] for bound in bounds),
        sum(value for _, value in samples.get(name + "_sum", ())),
        sum(value for _, value in samples.get(name + "_count", ())),
    )
