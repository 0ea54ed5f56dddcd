"""The vLLM engine: a ``vllm serve`` command line per role, and vLLM's metric names.

Disaggregated roles use vLLM's NixlConnector: a prefill worker is a KV producer, a decode worker a
KV consumer, and each gets its own NIXL side-channel port (``VLLM_NIXL_SIDE_CHANNEL_PORT``, one
port per TP rank from there up) and the address decode workers reach it at
(``VLLM_NIXL_SIDE_CHANNEL_HOST``). A colocated worker runs without a connector. The worker serves
the catalog model name (``--served-model-name``) so routers address real and simulated engines alike.

engine_args keys this launcher handles itself:
  hf_model                 the Hugging Face repo to load (default: HF_MODELS[model])
  executable               the ``vllm`` to run (default: ``vllm`` on PATH)
  served_model_name        the name requests use (default: the catalog model name)
  kv_role                  overrides the role's KV role (``kv_both`` for symmetric NIXL setups)
  kv_connector             default ``NixlConnector``
  gpu_memory_utilization   default 0.9 (the perf model's KV capacity assumes it)
  max_num_seqs             default 256
  max_num_batched_tokens   default 8192
  nixl_side_channel_port   default 5600 + 16 * lowest GPU id
  nixl_side_channel_host   default: the host the worker listens on, unless a wildcard
Keys the sim alone reads (SIM_ONLY_ARGS) are ignored; any other key becomes a ``vllm serve`` flag.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

from agents.engines.base import EngineError, EngineLauncher, WorkerSpec, flag_args, side_port
from agents.engines.metrics import MetricNames, WorkerMetrics, parse_worker_metrics

# Catalog model name -> the Hugging Face repo served for it (instruct variants where one exists).
HF_MODELS: dict[str, str] = {
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
    "llama-3.1-70b": "meta-llama/Llama-3.1-70B-Instruct",
    "llama-2-7b": "meta-llama/Llama-2-7b-chat-hf",
    "llama-2-70b": "meta-llama/Llama-2-70b-chat-hf",
    "mistral-7b": "mistralai/Mistral-7B-Instruct-v0.3",
    "qwen2.5-32b": "Qwen/Qwen2.5-32B-Instruct",
    "opt-13b": "facebook/opt-13b",
    "opt-66b": "facebook/opt-66b",
    "bloom-176b": "bigscience/bloom",
}

KV_ROLES = {"prefill": "kv_producer", "decode": "kv_consumer"}
NIXL_SIDE_CHANNEL_BASE_PORT = 5600
# Settings only the simulated engine understands; a plan may carry them for every engine.
SIM_ONLY_ARGS = frozenset({"time_scale", "kv_link", "kv_capacity_tokens"})

VLLM_NAMES = MetricNames(
    requests_running=("vllm:num_requests_running",),
    requests_waiting=("vllm:num_requests_waiting",),
    # vLLM V0 called the KV usage gpu_cache_usage_perc; both are shares in 0..1.
    kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    prompt_tokens_total=("vllm:prompt_tokens_total",),
    generation_tokens_total=("vllm:generation_tokens_total",),
    requests_finished_total=("vllm:request_success_total",),
    ttft_seconds=("vllm:time_to_first_token_seconds",),
    # inter_token_latency_seconds replaced time_per_output_token_seconds (same meaning) in 2025.
    itl_seconds=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
)

_HANDLED = frozenset(
    {
        "hf_model",
        "executable",
        "served_model_name",
        "kv_role",
        "kv_connector",
        "gpu_memory_utilization",
        "max_num_seqs",
        "max_num_batched_tokens",
        "nixl_side_channel_port",
        "nixl_side_channel_host",
    }
)
_DTYPE_FLAGS = {
    "bf16": ["--dtype", "bfloat16"],
    "fp16": ["--dtype", "float16"],
    # FP8 weights quantized on load and an FP8 KV cache, as the perf model's fp8 assumes.
    "fp8": ["--dtype", "bfloat16", "--quantization", "fp8", "--kv-cache-dtype", "fp8"],
}


def hf_model(spec: WorkerSpec) -> str:
    """The Hugging Face repo a real engine loads for the spec's catalog model."""
    given = spec.engine_args.get("hf_model")
    if given:
        return str(given)
    try:
        return HF_MODELS[spec.model]
    except KeyError:
        raise EngineError(
            f"worker {spec.name}: no Hugging Face repo known for model {spec.model!r}; "
            "set engine_args['hf_model']"
        ) from None


def dtype_flags(spec: WorkerSpec) -> list[str]:
    """The flags that load the model in the spec's dtype."""
    try:
        return list(_DTYPE_FLAGS[spec.dtype])
    except KeyError:
        raise EngineError(
            f"worker {spec.name}: unknown dtype {spec.dtype!r}; known: {', '.join(_DTYPE_FLAGS)}"
        ) from None


class VllmLauncher(EngineLauncher):
    """Runs ``vllm serve`` (vLLM V1, NixlConnector for disaggregated roles)."""

    name: ClassVar[str] = "vllm"

    def kv_role(self, spec: WorkerSpec) -> str | None:
        """The connector's kv_role for the spec, None for a colocated worker without one."""
        given = spec.engine_args.get("kv_role")
        return str(given) if given else KV_ROLES.get(spec.role)

    def command(self, spec: WorkerSpec, *, host: str = "127.0.0.1") -> list[str]:
        self.check(spec)
        args = spec.engine_args
        argv = [
            str(args.get("executable", "vllm")),
            "serve",
            hf_model(spec),
            "--served-model-name",
            str(args.get("served_model_name", spec.model)),
            "--host",
            host,
            "--port",
            str(spec.port),
            "--tensor-parallel-size",
            str(spec.tp),
            *dtype_flags(spec),
            "--gpu-memory-utilization",
            str(args.get("gpu_memory_utilization", 0.9)),
            "--max-num-seqs",
            str(args.get("max_num_seqs", 256)),
            "--max-num-batched-tokens",
            str(args.get("max_num_batched_tokens", 8192)),
        ]
        role = self.kv_role(spec)
        if role is not None:
            config = {"kv_connector": str(args.get("kv_connector", "NixlConnector")), "kv_role": role}
            argv += ["--kv-transfer-config", json.dumps(config, separators=(",", ":"))]
        return argv + flag_args(args, skip=_HANDLED | SIM_ONLY_ARGS)

    def environment(
        self, spec: WorkerSpec, base: Mapping[str, str], *, host: str | None = None
    ) -> dict[str, str]:
        env = super().environment(spec, base, host=host)
        if self.kv_role(spec) is not None:
            env["VLLM_NIXL_SIDE_CHANNEL_PORT"] = str(
                side_port(spec, NIXL_SIDE_CHANNEL_BASE_PORT, "nixl_side_channel_port")
            )
            side_host = spec.engine_args.get("nixl_side_channel_host") or (
                host if host and host not in ("0.0.0.0", "::") else None
            )
            if side_host:
                env["VLLM_NIXL_SIDE_CHANNEL_HOST"] = str(side_host)
        return env

    def parse_metrics(self, text: str) -> WorkerMetrics:
        return parse_worker_metrics(text, VLLM_NAMES)
