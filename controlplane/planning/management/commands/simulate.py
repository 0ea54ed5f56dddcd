"""`manage.py simulate`: replay a trace (or Poisson arrivals over its lengths) on a cluster of GPU pools and
print SLO attainment, latency, throughput, energy and cost. Tiers and their prices come from the database."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.planning.core.sim import (
    ClusterSpec,
    LengthSampler,
    PoolSpec,
    Request,
    SimResult,
    Slo,
    poisson_requests,
    requests_from_trace,
    simulate,
)
from controlplane.planning.specs import catalog_tiers
from profiler import catalog
from profiler.catalog import GpuTier, ModelArch
from profiler.errors import ProfilerError
from profiler.perfmodel import DTYPES, ENGINES, LINKS
from profiler.traces import FORMATS, read_trace

_POOL = re.compile(r"(?P<tier>[^:]+):(?P<count>\d+)(?:x(?P<tp>\d+))?")
_ROLES = ("prefill", "decode", "colocated")


class Command(BaseCommand):
    help = "Simulate a trace on a cluster of prefill/decode (or colocated) GPU pools and report SLO attainment and cost."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--trace", required=True, type=Path, help="the trace file")
        parser.add_argument(
            "--format", default="azure", choices=FORMATS, dest="fmt", help="its format (azure)"
        )
        parser.add_argument("--model", required=True, help=f"one of {', '.join(catalog.MODELS)}")
        for role in _ROLES:
            parser.add_argument(
                f"--{role}",
                action="append",
                default=[],
                metavar="TIER:N[xTP]",
                help=f"{role} instances: N of them on TP GPUs (default 1) of TIER; repeatable",
            )
        parser.add_argument("--engine", default="vllm", choices=ENGINES)
        parser.add_argument("--dtype", default="bf16", choices=DTYPES)
        parser.add_argument(
            "--kv-link", default="nvlink", choices=tuple(LINKS), help="prefill-to-decode KV link"
        )
        parser.add_argument(
            "--no-chunked-prefill", action="store_true", help="colocated: prefill in passes of its own"
        )
        parser.add_argument(
            "--chunk-tokens", type=int, default=512, help="colocated chunked prefill: tokens per step"
        )
        parser.add_argument(
            "--prefill-token-budget", type=int, default=8192, help="most tokens in one prefill pass"
        )
        parser.add_argument(
            "--local-prefill-threshold",
            type=int,
            default=0,
            help="disaggregated: prompts this short are prefilled on their decode instance",
        )
        parser.add_argument("--max-decode-batch", type=int, default=256, help="the engine's max_num_seqs")
        parser.add_argument("--ttft", type=float, required=True, help="TTFT SLO, seconds")
        parser.add_argument("--tpot", type=float, required=True, help="TPOT SLO, seconds")
        parser.add_argument(
            "--rate", type=float, help="Poisson arrivals at this rate (req/s) over the trace's lengths"
        )
        parser.add_argument("--duration", type=float, help="with --rate: seconds of arrivals")
        parser.add_argument(
            "--seed", type=int, default=0, help="with --rate: the seed of arrivals and lengths"
        )
        parser.add_argument("--json", action="store_true", help="print the full result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        model = _model(options["model"])
        cluster = _cluster(model, options)
        slo = _slo(options["ttft"], options["tpot"])
        requests = _requests(model, options)
        try:
            result = simulate(cluster, requests, slo, seed=options["seed"])
        except ProfilerError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        else:
            self.stdout.write(_report(result))


def _model(name: str) -> ModelArch:
    try:
        return catalog.model(name)
    except ProfilerError as exc:
        raise CommandError(f"--model: {exc}") from None


def _cluster(model: ModelArch, options: dict[str, Any]) -> ClusterSpec:
    for flag in ("chunk_tokens", "prefill_token_budget", "max_decode_batch"):
        if options[flag] < 1:
            raise CommandError(f"--{flag.replace('_', '-')}: must be at least 1, got {options[flag]}")
    if options["local_prefill_threshold"] < 0:
        raise CommandError("--local-prefill-threshold: must be at least 0")
    given = {role: options[role] for role in _ROLES if options[role]}
    if "colocated" in given and len(given) > 1:
        raise CommandError(
            "--colocated: a cluster is colocated or disaggregated; drop --prefill/--decode or --colocated"
        )
    if not given:
        raise CommandError("give --prefill and --decode pools, or --colocated pools")
    for role in ("prefill", "decode"):
        if "colocated" not in given and role not in given:
            raise CommandError(f"--{role}: a disaggregated cluster needs {role} instances")
    tiers = catalog_tiers()
    pools = tuple(
        _pool(role, value, tiers, model, options) for role, values in given.items() for value in values
    )
    return ClusterSpec(
        model=model,
        pools=pools,
        dtype=options["dtype"],
        kv_link=options["kv_link"],
        prefill_token_budget=options["prefill_token_budget"],
        chunked_prefill=not options["no_chunked_prefill"],
        chunk_tokens=options["chunk_tokens"],
        local_prefill_threshold=options["local_prefill_threshold"],
        max_decode_batch=options["max_decode_batch"],
    )


def _pool(
    role: str, value: str, tiers: dict[str, GpuTier], model: ModelArch, options: dict[str, Any]
) -> PoolSpec:
    match = _POOL.fullmatch(value)
    if match is None:
        raise CommandError(f"--{role} {value!r}: expected TIER:N or TIER:NxTP, e.g. H100-SXM-80GB:2x4")
    tier = tiers.get(match["tier"])
    if tier is None:
        raise CommandError(
            f"--{role}: unknown tier {match['tier']!r}; known tiers: {', '.join(sorted(tiers))}"
        )
    count, tp = int(match["count"]), int(match["tp"] or 1)
    if count < 1 or tp < 1:
        raise CommandError(f"--{role} {value!r}: instances and TP must be at least 1")
    try:
        pool = PoolSpec(tier=tier, role=role, count=count, tp=tp, engine=options["engine"])
        pool.perf_model(model, options["dtype"])
    except ProfilerError as exc:
        raise CommandError(f"--{role} {value}: {exc}") from None
    return pool


def _slo(ttft_s: float, tpot_s: float) -> Slo:
    for flag, value in (("--ttft", ttft_s), ("--tpot", tpot_s)):
        if not value > 0:
            raise CommandError(f"{flag}: must be a positive number of seconds, got {value}")
    return Slo(ttft_s=ttft_s, tpot_s=tpot_s)


def _requests(model: ModelArch, options: dict[str, Any]) -> list[Request]:
    rate, duration = options["rate"], options["duration"]
    if (rate is None) != (duration is None):
        raise CommandError(
            f"--{'duration' if rate is not None else 'rate'}: --rate and --duration go together"
        )
    for flag, value in (("--rate", rate), ("--duration", duration)):
        if value is not None and not value > 0:
            raise CommandError(f"{flag}: must be positive, got {value}")
    try:
        records = read_trace(options["trace"], options["fmt"])
        if rate is None:
            return requests_from_trace(records, max_context=model.max_context)
        lengths = LengthSampler.from_records(records, max_context=model.max_context)
    except ProfilerError as exc:
        raise CommandError(f"--trace: {exc}") from None
    return poisson_requests(rate, duration_s=duration, lengths=lengths, seed=options["seed"])


def _report(result: SimResult) -> str:
    slo = result.slo
    lines = [
        f"{result.requests} requests over {result.duration_s:.1f} s ({result.arrival_rate_rps:.2f} req/s)",
        f"SLO attainment {result.attainment:.1%} (TTFT <= {slo.ttft_s:g} s: {result.ttft_attainment:.1%}, "
        f"TPOT <= {slo.tpot_s:g} s: {result.tpot_attainment:.1%})",
        "",
        _table(
            ["latency (s)", "mean", "p50", "p90", "p99"],
            [
                [name, stats.mean, stats.p50, stats.p90, stats.p99]
                for name, stats in (("TTFT", result.ttft), ("TPOT", result.tpot), ("E2E", result.e2e))
            ],
        ),
        "",
        _table(
            ["pool", "tier", "TP", "instances", "GPUs", "util", "energy kWh", "$/h", "cost $"],
            [
                [
                    p.role,
                    p.tier,
                    p.tp,
                    p.count,
                    p.gpus,
                    f"{p.utilization:.0%}",
                    p.energy_j / 3.6e6,
                    p.cost_usd_per_h,
                    p.cost_usd,
                ]
                for p in result.pools
            ],
        ),
        "",
        f"throughput {result.throughput_tokens_per_s:.0f} tokens/s ({result.output_tokens_per_s:.0f} output), "
        f"{result.tokens_in} tokens in, {result.tokens_out} out",
        f"cost ${result.cost_usd:.2f} (${result.cost_usd_per_h:.2f}/h), ${result.usd_per_million_tokens:.3f} per million tokens",
        f"energy {result.energy_j / 3.6e6:.2f} kWh, mean power {result.power_kw:.2f} kW, "
        f"{result.tokens_per_joule:.2f} tokens/J",
    ]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells
    )
