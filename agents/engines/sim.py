"""The simulated engine: a stand-in for vLLM whose every step is timed by the perf model.

One process per worker, started as ``python -m agents.engines.sim --role R --model M --tier T --tp N
--port P [...]`` (``--help`` lists the flags). It speaks vLLM's OpenAI API and metric names, so routers
and agents treat it as a real engine (``agents.engines.sim_server``), and it schedules requests with
continuous batching under KV capacity (``agents.engines.sim_scheduler``). Its ``cleave_sim_*``
counters drive the node's simulated GPUs (``agents.gpu.SimulatedGpuReader``).

engine_args keys (each becomes the flag of the same name): time_scale, kv_link, max_num_seqs,
max_num_batched_tokens, kv_capacity_tokens, max_model_len, served_model_name.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from agents.cli import positive_float, positive_int
from agents.engines.base import ENGINE_ROLES, EngineError, EngineLauncher, WorkerSpec, flag_args
from agents.engines.metrics import SimActivity, WorkerMetrics, parse_worker_metrics, read_samples
from agents.engines.vllm import VLLM_NAMES
from profiler.errors import ProfilerError
from profiler.perfmodel import DTYPES, LINKS

ENGINE_ARGS = frozenset(
    {
        "time_scale",
        "kv_link",
        "max_num_seqs",
        "max_num_batched_tokens",
        "kv_capacity_tokens",
        "max_model_len",
        "served_model_name",
    }
)
# The repository root, so the worker finds ``agents`` and ``profiler`` whatever its working directory.
_ROOT = Path(__file__).resolve().parents[2]


class SimLauncher(EngineLauncher):
    """Runs the simulated engine with this interpreter."""

    name: ClassVar[str] = "sim"

    def check(self, spec: WorkerSpec) -> None:
        super().check(spec)
        unknown = sorted(set(spec.engine_args) - ENGINE_ARGS)
        if unknown:
            raise EngineError(
                f"worker {spec.name}: the sim engine does not know engine_args {', '.join(unknown)}; "
                f"known: {', '.join(sorted(ENGINE_ARGS))}"
            )

    def command(self, spec: WorkerSpec, *, host: str = "127.0.0.1") -> list[str]:
        self.check(spec)
        return [
            sys.executable,
            "-m",
            "agents.engines.sim",
            "--name",
            spec.name,
            "--role",
            spec.role,
            "--model",
            spec.model,
            "--tier",
            spec.tier,
            "--tp",
            str(spec.tp),
            "--dtype",
            spec.dtype,
            "--host",
            host,
            "--port",
            str(spec.port),
            *flag_args(spec.engine_args),
        ]

    def environment(
        self, spec: WorkerSpec, base: Mapping[str, str], *, host: str | None = None
    ) -> dict[str, str]:
        env = super().environment(spec, base, host=host)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(_ROOT) + (os.pathsep + path if path else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def parse_metrics(self, text: str) -> WorkerMetrics:
        metrics = parse_worker_metrics(text, VLLM_NAMES, info_name="cleave_sim_info")
        samples = read_samples(text)

        def by_phase(name: str, phase: str) -> float:
            return sum(value for labels, value in samples.get(name, ()) if labels.get("phase") == phase)

        def total(name: str) -> float:
            return sum(value for _, value in samples.get(name, ()))

        activity = SimActivity(
            prefill_busy_s=by_phase("cleave_sim_busy_seconds_total", "prefill"),
            decode_busy_s=by_phase("cleave_sim_busy_seconds_total", "decode"),
            prefill_steps=by_phase("cleave_sim_steps_total", "prefill"),
            decode_steps=by_phase("cleave_sim_steps_total", "decode"),
            prefill_tokens=by_phase("cleave_sim_step_tokens_total", "prefill"),
            decode_seqs=by_phase("cleave_sim_step_tokens_total", "decode"),
            decode_context_tokens=total("cleave_sim_decode_context_tokens_total"),
        )
        return WorkerMetrics(
            requests_running=metrics.requests_running,
            requests_waiting=metrics.requests_waiting,
            kv_cache_usage=metrics.kv_cache_usage,
            prompt_tokens_total=metrics.prompt_tokens_total,
            generation_tokens_total=metrics.generation_tokens_total,
            requests_finished_total=metrics.requests_finished_total,
            ttft_seconds=metrics.ttft_seconds,
            itl_seconds=metrics.itl_seconds,
            sim=activity,
            info=metrics.info,
        )
def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m agents.engines.sim``."""
    parser = argparse.ArgumentParser(
        prog="python -m agents.engines.sim",
        description="A simulated OpenAI-compatible engine timed by Cleave's perf model.",
    )
    parser.add_argument("--role", required=True, choices=ENGINE_ROLES)
    parser.add_argument("--model", required=True, help="catalog model name, e.g. llama-3.1-8b")
    parser.add_argument("--tier", required=True, help="catalog GPU tier, e.g. H100-SXM-80GB")
    parser.add_argument("--tp", type=positive_int, default=1)
    parser.add_argument("--dtype", default="bf16", choices=DTYPES)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=positive_int, required=True)
    parser.add_argument("--name", default="", help="worker name; also the engine id in kv_transfer_params")
    parser.add_argument(
        "--served-model-name", default="", help="the model name requests use (default: --model)"
    )
    parser.add_argument(
        "--time-scale",
        type=positive_float,
        default=1.0,
        help="wall seconds per model second (0.1 runs ten times faster)",
    )
    parser.add_argument(
        "--kv-link",
        default="nvlink",
        choices=sorted(LINKS),
        help="the link KV caches arrive over, for decode workers",
    )
    parser.add_argument("--max-num-seqs", type=positive_int, default=256)
    parser.add_argument("--max-num-batched-tokens", type=positive_int, default=8192)
    parser.add_argument(
        "--kv-capacity-tokens",
        type=positive_int,
        default=None,
        help="KV cache size in tokens (default: the perf model's for this worker)",
    )
    parser.add_argument(
        "--max-model-len",
        type=positive_int,
        default=None,
        help="context limit (default: the catalog model's)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve until stopped."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from agents.engines.sim_server import SimConfig, SimEngine, serve

    config = SimConfig(
        role=args.role,
        model=args.model,
        tier=args.tier,
        tp=args.tp,
        dtype=args.dtype,
        host=args.host,
        port=args.port,
        name=args.name,
        served_model_name=args.served_model_name,
        time_scale=args.time_scale,
        kv_link=args.kv_link,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        kv_capacity_tokens=args.kv_capacity_tokens,
        max_model_len=args.max_model_len,
    )
    try:
        engine = SimEngine(config)
    except ProfilerError as error:
        parser.error(str(error))
    serve(engine, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
