"""`manage.py perf`: what does this model do on this GPU? Prefill time, decode step time, KV capacity."""

from __future__ import annotations

import json as _json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.planning.specs import catalog_tier_named
from profiler import catalog
from profiler.errors import ProfilerError
from profiler.perfmodel import DTYPES, PerfModel


class Command(BaseCommand):
    help = "Perf-model figures for a (model, tier, TP, dtype): prefill time, decode step time, KV capacity."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="a catalog model, e.g. llama-3.1-8b")
        parser.add_argument("--tier", required=True, help="a GPU tier, e.g. H100-SXM-80GB")
        parser.add_argument("--tp", type=int, default=1)
        parser.add_argument("--dtype", choices=DTYPES, default="bf16")
        parser.add_argument("--prefill", type=int, metavar="TOKENS", help="prompt length to prefill")
        parser.add_argument("--decode-batch", type=int, metavar="B", help="sequences in a decode step")
        parser.add_argument("--context", type=int, default=1024, metavar="TOKENS", help="context per decoding sequence")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, model: str, tier: str, tp: int, dtype: str, prefill: int | None,
               decode_batch: int | None, context: int, json: bool, **options: Any) -> None:
        if prefill is None and decode_batch is None:
            raise CommandError("give --prefill TOKENS, --decode-batch B (with --context), or both")
        for flag, value in (("--prefill", prefill), ("--decode-batch", decode_batch), ("--context", context)):
            if value is not None and value < 1:
                raise CommandError(f"{flag}: must be at least 1")
        try:
            perf = PerfModel(model=catalog.model(model), tier=catalog_tier_named(tier), tp=tp, dtype=dtype)
        except ProfilerError as exc:
            raise CommandError(str(exc)) from None
        result: dict[str, Any] = {
            "model": model, "tier": tier, "tp": tp, "dtype": dtype,
            "kv_bytes_per_token": perf.kv_bytes_per_token, "kv_capacity_tokens": perf.kv_capacity_tokens,
        }
        if prefill is not None:
            result["prefill_tokens"] = prefill
            result["prefill_time_s"] = perf.prefill_time_s([prefill])
        if decode_batch is not None:
            result["decode_batch"] = decode_batch
            result["context_tokens"] = context
            result["decode_step_s"] = perf.decode_step_s(decode_batch, decode_batch * context)
            result["decode_tokens_per_s"] = decode_batch / result["decode_step_s"]
        if json:
            self.stdout.write(_json.dumps(result))
            return
        self.stdout.write(f"{model} on {tier}, TP {tp}, {dtype}")
        if prefill is not None:
            self.stdout.write(f"  prefill {prefill} tokens: {result['prefill_time_s'] * 1000:.1f} ms")
        if decode_batch is not None:
            self.stdout.write(
                f"  decode step, batch {decode_batch} x {context} tokens of context: "
                f"{result['decode_step_s'] * 1000:.2f} ms ({result['decode_tokens_per_s']:.0f} tokens/s)"
            )
        self.stdout.write(f"  KV cache: {perf.kv_bytes_per_token / 1024:.0f} KiB/token, {perf.kv_capacity_tokens} tokens fit")
