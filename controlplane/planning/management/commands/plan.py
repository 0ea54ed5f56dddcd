"""`manage.py plan SERVICE`: compute a plan (or a what-if) and print it beside its baselines.

    manage.py plan chat                                  from the latest profile
    manage.py plan chat --rate 40                        the same lengths at another rate
    manage.py plan chat --trace conv.csv --format azure  from a trace
    manage.py plan chat --rate 10 --prompt-tokens 1000 --output-tokens 200   an explicit workload

The plan is saved as a draft (for approval) unless --dry-run; --json prints it as JSON.
"""

from __future__ import annotations

import json as _json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.common.errors import ApplicationError
from controlplane.planning.core.baselines import PlanResult
from controlplane.planning.core.solver import Infeasible
from controlplane.planning.models import Objective
from controlplane.planning.planner import PlanParams, plan_compute, plan_save
from controlplane.traffic.models import Service
from profiler.traces import FORMATS


class Command(BaseCommand):
    help = "Compute a plan for a service and print it with its baselines (or why no plan is feasible)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("service", help="the service's name")
        parser.add_argument("--trace", type=Path, help="plan for this trace's workload")
        parser.add_argument("--format", choices=FORMATS, dest="fmt", help="the trace's format")
        parser.add_argument("--rate", type=float, help="arrival rate, req/s (a what-if over the same lengths)")
        parser.add_argument("--prompt-tokens", type=float, help="median prompt length of an explicit workload")
        parser.add_argument("--output-tokens", type=float, help="median output length of an explicit workload")
        parser.add_argument("--objective", choices=Objective.values, default=Objective.COST)
        parser.add_argument("--budget", type=float, metavar="USD_PER_H")
        parser.add_argument("--power-cap", type=float, metavar="KW")
        parser.add_argument("--headroom", type=float)
        parser.add_argument("--tiers", help="comma-separated tiers to allow")
        parser.add_argument("--no-verify", action="store_true", help="skip the simulator's verification")
        parser.add_argument("--dry-run", action="store_true", help="print the plan without saving it")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, service: str, trace: Path | None, fmt: str | None, rate: float | None,
               prompt_tokens: float | None, output_tokens: float | None, objective: str, budget: float | None,
               power_cap: float | None, headroom: float | None, tiers: str | None, no_verify: bool,
               dry_run: bool, json: bool, **options: Any) -> None:
        target = Service.objects.filter(name=service).first()
        if target is None:
            raise CommandError(f"no service named {service!r}")
        if trace is not None and fmt is None:
            raise CommandError("--format: required with --trace")
        if trace is not None and not trace.is_file():
            raise CommandError(f"--trace: no file at {trace}")
        for flag, value in (("--rate", rate), ("--budget", budget), ("--power-cap", power_cap),
                            ("--prompt-tokens", prompt_tokens), ("--output-tokens", output_tokens)):
            if value is not None and not value > 0:
                raise CommandError(f"{flag}: must be positive")
        if trace is not None:
            source = "trace"
        elif prompt_tokens is not None or output_tokens is not None:
            if rate is None or prompt_tokens is None or output_tokens is None:
                raise CommandError("an explicit workload needs --rate, --prompt-tokens and --output-tokens")
            source = "explicit"
        else:
            source = "profile"
        params = PlanParams(
            source=source, objective=objective, budget_usd_per_h=budget, power_cap_kw=power_cap,
            allowed_tiers=tuple(t.strip() for t in tiers.split(",") if t.strip()) if tiers else None,
            headroom=headroom, rate_rps=rate, prompt_tokens_p50=prompt_tokens, output_tokens_p50=output_tokens,
            trace_path=trace, trace_format=fmt, trace_name=trace.name if trace else "", verify=not no_verify,
        )
        try:
            computed = plan_compute(service=target, params=params)
        except ApplicationError as exc:
            fields = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in exc.fields.items())
            raise CommandError(fields or exc.message) from None
        outcome = computed.outcome
        if isinstance(outcome, Infeasible):
            if json:
                self.stdout.write(_json.dumps({"feasible": False, **outcome.as_dict()}))
            raise CommandError(f"no feasible plan ({outcome.constraint}): {outcome.message}")
        assert isinstance(outcome, PlanResult)
        plan_id = None
        if not dry_run:
            plan_id = plan_save(actor=None, service=target, computed=computed, system="cli").pk
        if json:
            self.stdout.write(_json.dumps({
                "feasible": True, "plan": plan_id, "instances": outcome.instances(),
                "placement": outcome.placement.as_list(), "routing": outcome.routing,
                "predictions": outcome.predictions(), "baselines": outcome.baselines,
            }))
            return
        self._table(target, outcome, plan_id)

    def _table(self, service: Service, outcome: PlanResult, plan_id: int | None) -> None:
        predictions = outcome.predictions()
        workload = outcome.evaluation
        self.stdout.write(
            f"{service.name}: {service.model_name}, TTFT {service.ttft_slo_s:g} s / TPOT {service.tpot_slo_s * 1000:g} ms "
            f"at {service.attainment_target:.0%}, {workload.rate_rps:.4g} req/s"
        )
        mode = predictions["mode"]
        threshold = predictions["local_prefill_threshold"]
        extra = f", local prefill up to {threshold} tokens" if mode == "disaggregated" and threshold else ""
        self.stdout.write(f"plan: {mode}{extra}" + (f" (saved as draft plan {plan_id})" if plan_id else " (not saved)"))
        for row in outcome.instances():
            self.stdout.write(f"  {row['count']:>4} x {row['role']:<9} {row['tier']} TP{row['tp']}")
        rows = [("plan", predictions)] + [(name, data) for name, data in outcome.baselines.items()]
        self.stdout.write("")
        self.stdout.write(f"{'':<28}{'$/h':>10}{'kW':>8}{'GPUs':>6}{'attain':>8}{'$/Mtok':>8}")
        for name, data in rows:
            if not data.get("feasible", True):
                self.stdout.write(f"{name:<28}  {data.get('reason', 'infeasible')}")
                continue
            attainment = data.get("slo_attainment")
            per_token = data.get("usd_per_million_tokens")
            self.stdout.write(
                f"{name:<28}{data['cost_usd_per_h']:>10.2f}{data['power_kw']:>8.2f}{data['gpus']:>6}"
                f"{'-' if attainment is None else f'{attainment:.1%}':>8}"
                f"{'-' if per_token is None else f'{per_token:.3f}':>8}"
            )
        if predictions.get("note"):
            self.stdout.write(f"note: {predictions['note']}")
