"""Measure prefill and decode times on the local GPU, as reference points for the perf model.

    python bench/gpu_calibrate.py [--out bench/results/gpu_points_local.csv] [--layers 4] [--json]

Times a stack of a few Llama-3.1-8B-shaped decoder layers (GQA attention through torch SDPA, SwiGLU
MLP, RMSNorm) with random bf16 weights: prefill of one prompt of 128...8192 tokens, and one decode
step of 1...256 sequences over a contiguous (unpaged) KV cache of 512...4096 tokens each. Each time is
the median over repeated runs (CUDA events), scaled from the stack to the model's 32 layers, plus the
final norm and LM head measured on their own. The rows follow data/reference/gpu_points.csv (source
``local``, kind ``measured``, engine ``torch``, the GPU as its catalog tier).

Without torch (2.5 or later) or a CUDA GPU, or on a GPU the catalog does not know, it says so (with
``--json``, as a last line ``{"bench": "gpu_calibrate", "points": 0, "skipped": <why>}``) and exits 0
without writing anything: it never invents points. Cost: about a minute on one GPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, add_json_flag, emit
from profiler import catalog

NAME = "gpu_calibrate"
DEFAULT_OUT = RESULTS_DIR / "gpu_points_local.csv"
MODEL = "llama-3.1-8b"
PREFILL_TOKENS = (128, 256, 512, 1024, 2048, 4096, 8192)
DECODE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DECODE_CONTEXTS = (512, 1024, 2048, 4096)
COLUMNS = (
    "source",
    "kind",
    "engine",
    "model",
    "gpu",
    "tp",
    "dtype",
    "phase",
    "batch",
    "prompt_tokens",
    "context_tokens",
    "latency_ms",
    "notes",
)

# torch.cuda.get_device_name() words -> catalog tier: (words it must have, words it must not, tier).
# A GPU not listed (an A100 40GB or PCIe, an H100 PCIe or NVL) is no catalog tier; points measured on
# it would mislabel one.
_DEVICE_TIERS: tuple[tuple[frozenset[str], frozenset[str], str], ...] = (
    (frozenset({"H100", "HBM3"}), frozenset({"NVL", "PCIE"}), "H100-SXM-80GB"),
    (frozenset({"H200"}), frozenset({"NVL"}), "H200-SXM-141GB"),
    (frozenset({"B200"}), frozenset(), "B200-SXM-180GB"),
    (frozenset({"A100", "SXM4", "80GB"}), frozenset(), "A100-SXM-80GB"),
    (frozenset({"L40S"}), frozenset(), "L40S-48GB"),
    (frozenset({"L4"}), frozenset(), "L4-24GB"),
    (frozenset({"A10G"}), frozenset(), "A10G-24GB"),
    (frozenset({"MI300X"}), frozenset(), "MI300X-192GB"),
)


def tier_for_device(device_name: str) -> str | None:
    """The catalog tier of a CUDA device name ("NVIDIA H100 80GB HBM3"), or None where there is none."""
    words = set(device_name.upper().replace("-", " ").split())
    for required, forbidden, tier_name in _DEVICE_TIERS:
        if required <= words and not forbidden & words:
            return tier_name
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and write the points; 0 also when there is nothing to measure on."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"CSV file for the measured points (default {DEFAULT_OUT})",
    )
    parser.add_argument("--layers", type=int, default=4, help="decoder layers in the timed stack")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per point (median kept)")
    add_json_flag(parser)
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        return _skip("torch is not installed", args.json)
    if not torch.cuda.is_available():
        return _skip("no CUDA GPU is available", args.json)
    if "enable_gqa" not in (torch.nn.functional.scaled_dot_product_attention.__doc__ or ""):
        return _skip(f"torch {torch.__version__} has no GQA in SDPA (needs 2.5 or later)", args.json)
    device_name = torch.cuda.get_device_name(0)
    tier_name = tier_for_device(device_name)
    if tier_name is None:
        return _skip(f"{device_name!r} is not a catalog tier", args.json)

    rows = measure(torch, tier_name, device_name, args.layers, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    emit(
        NAME,
        {"gpu": tier_name, "device": device_name, "points": len(rows), "out": str(args.out)},
        rows,
        args.json,
        args.results_dir,
    )
    return 0


def _skip(reason: str, as_json: bool) -> int:
    """Say why nothing was measured; write nothing, not even a result file, and succeed."""
    print(f"gpu_calibrate: {reason}; no points measured, nothing written")
    if as_json:
        print(json.dumps({"bench": NAME, "points": 0, "skipped": reason}))
    return 0


def measure(torch: Any, tier_name: str, device_name: str, layers: int, repeats: int) -> list[dict[str, Any]]:
    """Time the prefill and decode sweeps on GPU 0 and return them as gpu_points.csv rows."""
    arch = catalog.model(MODEL)
    functional = torch.nn.functional
    device, dtype = torch.device("cuda:0"), torch.bfloat16
    torch.manual_seed(0)
    width, heads, kv_heads, head_dim = arch.hidden_size, arch.attention_heads, arch.kv_heads, arch.head_dim

    def weight(rows: int, cols: int) -> Any:
        return torch.randn(rows, cols, device=device, dtype=dtype) * cols**-0.5

    stack = [
        {
            "qkv": weight((heads + 2 * kv_heads) * head_dim, width),
            "o": weight(width, heads * head_dim),
            "gate_up": weight(2 * arch.intermediate_size, width),
            "down": weight(width, arch.intermediate_size),
            "norm1": torch.ones(width, device=device, dtype=dtype),
            "norm2": torch.ones(width, device=device, dtype=dtype),
        }
        for _ in range(layers)
    ]
    head = {"norm": torch.ones(width, device=device, dtype=dtype), "lm_head": weight(arch.vocab_size, width)}

    def rms_norm(x: Any, scale: Any) -> Any:
        return functional.rms_norm(x, (width,), scale, 1e-5)

    def layer(x: Any, params: dict[str, Any], cache: tuple[Any, Any] | None) -> Any:
        batch, tokens, _ = x.shape
        qkv = functional.linear(rms_norm(x, params["norm1"]), params["qkv"])
        q, k, v = qkv.split([heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], dim=-1)
        q = q.view(batch, tokens, heads, head_dim).transpose(1, 2)
        k = k.view(batch, tokens, kv_heads, head_dim).transpose(1, 2)
        v = v.view(batch, tokens, kv_heads, head_dim).transpose(1, 2)
        if cache is None:
            attended = functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            keys, values = cache
            keys[:, :, -1:] = k
            values[:, :, -1:] = v
            attended = functional.scaled_dot_product_attention(q, keys, values, enable_gqa=True)
        x = x + functional.linear(attended.transpose(1, 2).reshape(batch, tokens, -1), params["o"])
        gate, up = functional.linear(rms_norm(x, params["norm2"]), params["gate_up"]).chunk(2, dim=-1)
        return x + functional.linear(functional.silu(gate) * up, params["down"])

    def logits(x: Any) -> Any:
        return functional.linear(rms_norm(x[:, -1:], head["norm"]), head["lm_head"])

    def timed_ms(run: Callable[[], Any]) -> float:
        for _ in range(3):
            run()
        samples = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        return float(statistics.median(samples))

    scale = arch.layers / layers
    note = f"median of {repeats} runs of a {layers}-layer stack scaled to {arch.layers} layers plus LM head; "
    note += f"random bf16 weights, torch {torch.__version__} SDPA, unpaged KV; {device_name}"
    rows: list[dict[str, Any]] = []

    def row(phase: str, batch: int, prompt: int | None, context: int | None, ms: float) -> None:
        rows.append(
            {
                "source": "local",
                "kind": "measured",
                "engine": "torch",
                "model": MODEL,
                "gpu": tier_name,
                "tp": 1,
                "dtype": "bf16",
                "phase": phase,
                "batch": batch,
                "prompt_tokens": prompt if prompt is not None else "",
                "context_tokens": context if context is not None else "",
                "latency_ms": round(ms, 2),
                "notes": note,
            }
        )

    with torch.inference_mode():
        for tokens in PREFILL_TOKENS:
            x = torch.randn(1, tokens, width, device=device, dtype=dtype)

            def prefill(x: Any = x) -> Any:
                for params in stack:
                    x = layer(x, params, None)
                return x

            def prefill_head(x: Any = x) -> Any:
                return logits(x)

            ms = timed_ms(prefill) * scale + timed_ms(prefill_head)
            row("prefill", 1, tokens, None, ms)
            del x

        free_bytes, _ = torch.cuda.mem_get_info()
        for context in DECODE_CONTEXTS:
            for batch in DECODE_BATCHES:
                cache_bytes = 2 * layers * batch * kv_heads * context * head_dim * 2
                if cache_bytes > 0.6 * free_bytes:
                    continue
                caches = [
                    (
                        torch.randn(batch, kv_heads, context, head_dim, device=device, dtype=dtype),
                        torch.randn(batch, kv_heads, context, head_dim, device=device, dtype=dtype),
                    )
                    for _ in range(layers)
                ]
                x = torch.randn(batch, 1, width, device=device, dtype=dtype)

                def decode(x: Any = x, caches: list[tuple[Any, Any]] = caches) -> Any:
                    for params, cache in zip(stack, caches, strict=True):
                        x = layer(x, params, cache)
                    return x

                def decode_head(x: Any = x) -> Any:
                    return logits(x)

                ms = timed_ms(decode) * scale + timed_ms(decode_head)
                row("decode", batch, None, context, ms)
                del caches, x
                torch.cuda.empty_cache()
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
