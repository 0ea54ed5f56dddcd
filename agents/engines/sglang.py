"""The SGLang engine: a ``python -m sglang.launch_server`` command line per role, and SGLang's metric names.

Disaggregated roles use SGLang's PD disaggregation (``--disaggregation-mode prefill|decode``) over
Mooncake or NIXL; a prefill worker also opens a bootstrap port its decode peers connect to, one per
worker on a node. Note that SGLang's PD protocol is not vLLM's: its router sends each request to the
prefill and the decode worker at once with a bootstrap room, rather than prefill first and then
decode with ``kv_transfer_params``. Colocated workers serve plain OpenAI requests like vLLM.

engine_args keys this launcher handles itself:
  hf_model              the Hugging Face repo to load (default: HF_MODELS[model])
  python                the interpreter with sglang installed (default: ``python3`` on PATH)
  served_model_name     default: the catalog model name
  transfer_backend      ``mooncake`` (default) or ``nixl``
  bootstrap_port        default 8998 + 16 * lowest GPU id (prefill workers only)
  max_num_seqs          -> ``--max-running-requests`` (default 256)
  max_num_batched_tokens -> ``--chunked-prefill-size`` (default 8192)
  gpu_memory_utilization -> ``--mem-fraction-static`` (SGLang's own default when absent)
Sim-only keys are ignored; any other key becomes a launch_server flag.
"""

from __future__ import annotations

from typing import ClassVar

from agents.engines.base import EngineError, EngineLauncher, WorkerSpec, flag_args, side_port
from agents.engines.metrics import MetricNames, WorkerMetrics, parse_worker_metrics
from agents.engines.vllm import SIM_ONLY_ARGS, hf_model

TRANSFER_BACKENDS = ("mooncake", "nixl")
BOOTSTRAP_BASE_PORT = 8998

_HANDLED = frozenset(
    {
        "hf_model",
        "python",
        "served_model_name",
        "transfer_backend",
        "bootstrap_port",
        "max_num_seqs",
        "max_num_batched_tokens",
        "gpu_memory_utilization",
    }
)
_DTYPE_FLAGS = {
    "bf16": ["--dtype", "bfloat16"],
    "fp16": ["--dtype", "float16"],
    "fp8": ["--dtype", "bfloat16", "--quantization", "fp8", "--kv-cache-dtype", "fp8_e4m3"],
}


def _either_prefix(*names: str) -> tuple[str, ...]:
    # SGLang's metric prefix is "sglang:"; some releases expose "sglang_" instead: read either.
    return tuple(f"sglang:{name}" for name in names) + tuple(f"sglang_{name}" for name in names)


SGLANG_NAMES = MetricNames(
    requests_running=_either_prefix("num_running_reqs"),
    requests_waiting=_either_prefix("num_queue_reqs"),
    kv_cache_usage=_either_prefix("token_usage"),
    prompt_tokens_total=_either_prefix("prompt_tokens_total"),
    generation_tokens_total=_either_prefix("generation_tokens_total"),
    requests_finished_total=_either_prefix("num_requests_total"),
    ttft_seconds=_either_prefix("time_to_first_token_seconds"),
    # Per-gap latency where this SGLang has it; else the per-request average (TPOT).
    itl_seconds=_either_prefix("inter_token_latency_seconds", "time_per_output_token_seconds"),
)


class SglangLauncher(EngineLauncher):
    """Runs ``python -m sglang.launch_server`` with metrics on, PD disaggregation for split roles."""

    name: ClassVar[str] = "sglang"

    def command(self, spec: WorkerSpec, *, host: str = "127.0.0.1") -> list[str]:
        self.check(spec)
        args = spec.engine_args
        try:
            dtype = _DTYPE_FLAGS[spec.dtype]
        except KeyError:
            raise EngineError(
                f"worker {spec.name}: unknown dtype {spec.dtype!r}; known: {', '.join(_DTYPE_FLAGS)}"
            ) from None
        argv = [
            str(args.get("python", "python3")),
            "-m",
            "sglang.launch_server",
            "--model-path",
            hf_model(spec),
            "--served-model-name",
            str(args.get("served_model_name", spec.model)),
            "--host",
            host,
            "--port",
            str(spec.port),
            "--tp-size",
            str(spec.tp),
            *dtype,
            "--max-running-requests",
            str(args.get("max_num_seqs", 256)),
            "--chunked-prefill-size",
            str(args.get("max_num_batched_tokens", 8192)),
            "--enable-metrics",
        ]
        if "gpu_memory_utilization" in args:
            argv += ["--mem-fraction-static", str(args["gpu_memory_utilization"])]
        if spec.role in ("prefill", "decode"):
            backend = str(args.get("transfer_backend", "mooncake"))
            if backend not in TRANSFER_BACKENDS:
                raise EngineError(
                    f"worker {spec.name}: unknown transfer_backend {backend!r}; "
                    f"known: {', '.join(TRANSFER_BACKENDS)}"
                )
            argv += ["--disaggregation-mode", spec.role, "--disaggregation-transfer-backend", backend]
            if spec.role == "prefill":
                port = side_port(spec, BOOTSTRAP_BASE_PORT, "bootstrap_port")
                argv += ["--disaggregation-bootstrap-port", str(port)]
        return argv + flag_args(args, skip=_HANDLED | SIM_ONLY_ARGS)

    def parse_metrics(self, text: str) -> WorkerMetrics:
        return parse_worker_metrics(text, SGLANG_NAMES)
