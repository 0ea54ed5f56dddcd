"""``python -m agents.loadgen``: replay a trace against a router, open loop, and report latencies and SLOs.

Arrivals follow the trace's timestamps sped up ``--speed`` times, or a Poisson process of ``--rate``
requests/s (the trace then gives only the lengths, cycled as needed). Arrivals never wait for earlier
requests to finish (open loop), so an overloaded fleet shows as latency, not as a slower client;
``--concurrency-limit`` caps requests in flight, and the time a request waits for a slot counts in its
latency. Each request's prompt has the recorded prompt length in words (what the sim counts as
tokens; about as many tokens for a real engine) and asks for ``max_tokens`` = the recorded output
length. Where the trace has Mooncake ``hash_ids``, each id stands for the same 512 words everywhere,
so requests that share a prefix in the trace share it here too.

Reports TTFT (streamed requests; a whole answer's time otherwise), TPOT (streamed), end-to-end
latency at p50/p90/p99, SLO attainment (the share of requests that succeeded within both SLOs, on
latencies divided by ``--time-scale`` when the fleet is a sim run that many times slower or faster
than life), errors by kind and throughput; a progress bar goes to stderr, and ``--json`` prints one
JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from agents.cli import positive_float
from profiler.traces import FORMATS, TraceError, TraceRecord, parse_columns, read_trace

# Common English words that are one token each in the usual tokenizers.
VOCABULARY = ["the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no"]  # fmt: skip
BLOCK_WORDS = 512  # what one Mooncake hash id covers
CHAT_TOKENS_PER_MESSAGE = 4  # what the sim adds to a chat message for its template
_BLOCK_CACHE = 4096


@dataclass(frozen=True)
class Planned:
    """One request to send: when (seconds after the start), and its lengths."""

    index: int
    at_s: float
    prompt_tokens: int
    max_tokens: int
    hash_ids: tuple[int, ...] = ()


@dataclass
class Outcome:
    """What one request got."""

    ok: bool
    error: str = ""
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0


def schedule(
    records: Iterable[TraceRecord],
    *,
    speed: float | None,
    rate: float | None,
    seed: int,
    duration_s: float | None,
    requests: int | None,
) -> Iterator[Planned]:
    """The requests to send, in order: at the trace's times over ``speed``, or Poisson at ``rate``."""
    rng = random.Random(seed)
    first: float | None = None
    clock = 0.0
    for index, record in enumerate(records):
        if requests is not None and index >= requests:
            return
        if rate is not None:
            clock += rng.expovariate(rate) if index else 0.0
            at_s = clock
        else:
            if record.arrival_s is None:
                raise TraceError("the trace has no arrival times: give --rate", field="arrival_s")
            first = record.arrival_s if first is None else first
            at_s = max(record.arrival_s - first, 0.0) / (speed or 1.0)
        if duration_s is not None and at_s > duration_s:
            return
        yield Planned(
            index=index,
            at_s=at_s,
            prompt_tokens=max(record.prompt_tokens, 1),
            max_tokens=max(record.max_tokens or record.output_tokens, 1),
            hash_ids=record.hash_ids,
        )


class PromptBuilder:
    """Prompts of a given number of words; a request's own words unless its trace row names shared blocks."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._blocks: OrderedDict[int, list[str]] = OrderedDict()

    def _block(self, hash_id: int) -> list[str]:
        words = self._blocks.get(hash_id)
        if words is None:
            words = random.Random(f"{self.seed}/block/{hash_id}").choices(VOCABULARY, k=BLOCK_WORDS)
            self._blocks[hash_id] = words
            if len(self._blocks) > _BLOCK_CACHE:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(hash_id)
        return words

    def build(self, planned: Planned, words: int) -> str:
        """A prompt of ``words`` words for this request."""
        out: list[str] = []
        for hash_id in planned.hash_ids:
            if len(out) >= words:
                break
            out += self._block(hash_id)
        if len(out) < words:
            rng = random.Random(f"{self.seed}/request/{planned.index}")
            out += rng.choices(VOCABULARY, k=words - len(out))
        return " ".join(out[:words])


def _records(args: argparse.Namespace) -> Iterator[TraceRecord]:
    columns = parse_columns(args.columns) if args.columns else None
    if args.rate is None:
        yield from read_trace(args.trace, args.format, columns=columns)
        return
    # With Poisson arrivals the trace gives lengths only, cycled until --requests or --duration ends it.
    for _ in itertools.count():
        empty = True
        for record in read_trace(args.trace, args.format, columns=columns):
            empty = False
            yield record
        if empty:
            return


class Runner:
    """Sends the planned requests and collects their outcomes."""

    def __init__(self, args: argparse.Namespace, model: str, client: httpx.AsyncClient) -> None:
        self.args, self.model, self.client = args, model, client
        self.prompts = PromptBuilder(args.seed)
        self.chat = args.endpoint == "chat"
        self.url = f"{args.router.rstrip('/')}/v1/{'chat/completions' if self.chat else 'completions'}"
        self.headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        self.slots = asyncio.Semaphore(args.concurrency_limit) if args.concurrency_limit else None

    def body(self, planned: Planned) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": planned.max_tokens}
        if self.chat:
            words = max(planned.prompt_tokens - CHAT_TOKENS_PER_MESSAGE, 1)
            body["messages"] = [{"role": "user", "content": self.prompts.build(planned, words)}]
        else:
            body["prompt"] = self.prompts.build(planned, planned.prompt_tokens)
        if self.args.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def send(self, planned: Planned, due: float) -> Outcome:
        """One request; its latencies count from ``due`` (its planned arrival, perf_counter time)."""
        body = self.body(planned)
        try:
            if self.slots is None:
                return await self._exchange(body, due, planned)
            async with self.slots:
                return await self._exchange(body, due, planned)
        except httpx.TimeoutException:
            return Outcome(False, "timeout", prompt_tokens=planned.prompt_tokens)
        except httpx.TransportError as error:
            kind = "connect" if isinstance(error, httpx.ConnectError) else "stream_error"
            return Outcome(False, kind, prompt_tokens=planned.prompt_tokens)

    async def _exchange(self, body: dict[str, Any], due: float, planned: Planned) -> Outcome:
        if not self.args.stream:
            response = await self.client.post(self.url, json=body, headers=self.headers)
            done = time.perf_counter()
            if response.status_code != 200:
                return Outcome(False, f"http_{response.status_code}", prompt_tokens=planned.prompt_tokens)
            usage = response.json().get("usage") or {}
            return Outcome(True, ttft_s=done - due, e2e_s=done - due, prompt_tokens=planned.prompt_tokens,
                           output_tokens=int(usage.get("completion_tokens") or 0))  # fmt: skip
        first = last = None
        tokens, usage_tokens, error = 0, None, ""
        async with self.client.stream("POST", self.url, json=body, headers=self.headers) as response:
            if response.status_code != 200:
                await response.aread()
                return Outcome(False, f"http_{response.status_code}", prompt_tokens=planned.prompt_tokens)
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    error = "stream_error"
                    continue
                if event.get("usage"):
                    usage_tokens = event["usage"].get("completion_tokens")
                choices = event.get("choices") or []
                text = (
                    (choices[0].get("text") or (choices[0].get("delta") or {}).get("content"))
                    if choices
                    else None
                )
                if text:
                    last = time.perf_counter()
                    first = first or last
                    tokens += 1
        done = time.perf_counter()
        if error or first is None:
            return Outcome(False, error or "empty_stream", prompt_tokens=planned.prompt_tokens)
        count = usage_tokens or tokens
        tpot = (last - first) / (count - 1) if last is not None and count > 1 else None
        return Outcome(True, ttft_s=first - due, tpot_s=tpot, e2e_s=done - due,
                       prompt_tokens=planned.prompt_tokens, output_tokens=count)  # fmt: skip


async def run(
    args: argparse.Namespace, plan: Iterable[Planned], total: int | None
) -> tuple[list[Outcome], float]:
    """Send every planned request on time; their outcomes and the wall seconds from first send to last answer."""
    from tqdm import tqdm

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=args.timeout_s, limits=limits, trust_env=False) as client:
        model = args.model or await _served_model(client, args)
        runner = Runner(args, model, client)
        outcomes: list[Outcome] = []
        progress = tqdm(total=total, file=sys.stderr, unit="req", disable=None)

        async def one(planned: Planned, due: float) -> None:
            outcome = await runner.send(planned, due)
            outcomes.append(outcome)
            progress.update(1)

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        for planned in plan:
            due = start + planned.at_s
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(planned, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
        progress.close()
        return outcomes, time.perf_counter() - start


async def _served_model(client: httpx.AsyncClient, args: argparse.Namespace) -> str:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    response = await client.get(f"{args.router.rstrip('/')}/v1/models", headers=headers)
    response.raise_for_status()
    return str(response.json()["data"][0]["id"])


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p99 and mean of the values (None each when there are none)."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "mean": sum(ordered) / len(ordered)}


def summarize(outcomes: Sequence[Outcome], wall_s: float, args: argparse.Namespace) -> dict[str, Any]:
    """The report: latency percentiles, SLO attainment, errors by kind, throughput."""
    ok = [outcome for outcome in outcomes if outcome.ok]
    scale = args.time_scale

    def scaled(values: Iterable[float | None]) -> list[float]:
        return [value / scale for value in values if value is not None]

    report: dict[str, Any] = {
        "requests": len(outcomes),
        "ok": len(ok),
        "errors": dict(Counter(outcome.error for outcome in outcomes if not outcome.ok)),
        "wall_s": wall_s,
        "requests_per_s": len(ok) / wall_s if wall_s > 0 else 0.0,
        "output_tokens_per_s": sum(o.output_tokens for o in ok) / wall_s if wall_s > 0 else 0.0,
        "prompt_tokens_per_s": sum(o.prompt_tokens for o in ok) / wall_s if wall_s > 0 else 0.0,
        "time_scale": scale,
        "ttft_s": percentiles(scaled(o.ttft_s for o in ok)),
        "tpot_s": percentiles(scaled(o.tpot_s for o in ok)),
        "e2e_s": percentiles(scaled(o.e2e_s for o in ok)),
    }
    if args.ttft_slo is not None or args.tpot_slo is not None:
        met = sum(
            1
            for o in ok
            if (args.ttft_slo is None or (o.ttft_s is not None and o.ttft_s / scale <= args.ttft_slo))
            and (args.tpot_slo is None or o.tpot_s is None or o.tpot_s / scale <= args.tpot_slo)
        )
        report["slo"] = {"ttft_s": args.ttft_slo, "tpot_s": args.tpot_slo,
                         "attainment": met / len(outcomes) if outcomes else None}  # fmt: skip
    return report


def _table(report: dict[str, Any]) -> str:
    unit = "s" if report["time_scale"] == 1 else f"s, divided by time scale {report['time_scale']}"
    lines = [
        f"requests {report['requests']}  ok {report['ok']}  errors {report['errors'] or 'none'}",
        f"throughput {report['requests_per_s']:.2f} req/s, {report['output_tokens_per_s']:.1f} output tok/s "
        f"over {report['wall_s']:.1f} s",
        f"{'latency (' + unit + ')':<40} {'p50':>10} {'p90':>10} {'p99':>10} {'mean':>10}",
    ]
    for name in ("ttft_s", "tpot_s", "e2e_s"):
        cells = [report[name][key] for key in ("p50", "p90", "p99", "mean")]
        lines.append(
            f"{name:<40} " + " ".join(f"{c:>10.4f}" if c is not None else f"{'-':>10}" for c in cells)
        )
    if "slo" in report:
        slo = report["slo"]
        lines.append(
            f"SLO attainment (TTFT <= {slo['ttft_s']}, TPOT <= {slo['tpot_s']}): {slo['attainment']:.3f}"
        )
    return "\n".join(lines)

def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m agents.loadgen``."""
    p = argparse.ArgumentParser(
        prog="python -m agents.loadgen", description="Replay a trace against a router, open loop."
    )
    p.add_argument("--router", required=True, help="the router's base URL, e.g. http://127.0.0.1:8300")
    p.add_argument("--api-key", default="", help="a client key of the service (sk-clv-...)")
    p.add_argument("--trace", required=True)
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument(
        "--columns", help="column mapping for csv/jsonl traces, e.g. prompt_tokens=in,output_tokens=out"
    )
    p.add_argument("--model", help="the model to ask for (default: the router's /v1/models)")
    p.add_argument("--endpoint", choices=["completions", "chat"], default="completions")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=positive_float, help="replay at the trace's timestamps, this many times faster"
    )
    pace.add_argument("--rate", type=positive_float, help="Poisson arrivals at this many requests/s")
    p.add_argument("--duration", type=positive_float, help="stop sending after this many seconds")
    p.add_argument("--requests", type=int, help="send at most this many requests")
    p.add_argument("--stream", action="store_true", help="stream answers (TTFT and TPOT need it)")
    p.add_argument("--ttft-slo", type=positive_float, help="seconds")
    p.add_argument("--tpot-slo", type=positive_float, help="seconds")
    p.add_argument("--concurrency-limit", type=int, help="at most this many requests in flight")
    p.add_argument(
        "--time-scale",
        type=positive_float,
        default=1.0,
        help="divide latencies by this before the SLO check (a sim fleet run with --time-scale)",
    )
    p.add_argument("--timeout-s", type=positive_float, default=600.0, help="per request")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    return p  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the replay; 0 when any request succeeded."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rate is not None and args.duration is None and args.requests is None:
        parser.error("--rate needs --duration or --requests")
    if args.requests is not None and args.requests < 1:
        parser.error("--requests must be >= 1")
    if args.concurrency_limit is not None and args.concurrency_limit < 1:
        parser.error("--concurrency-limit must be >= 1")
    if args.speed is None and args.rate is None:
        args.speed = 1.0
    try:
        plan = schedule(_records(args), speed=args.speed, rate=args.rate, seed=args.seed,
                        duration_s=args.duration, requests=args.requests)  # fmt: skip
        outcomes, wall_s = asyncio.run(run(args, plan, args.requests))
    except (TraceError, OSError) as error:
        print(f"loadgen: {error}", file=sys.stderr)
        return 2
    except httpx.HTTPError as error:
        print(f"loadgen: cannot reach the router: {error}", file=sys.stderr)
        return 2
    report = summarize(outcomes, wall_s, args)
    print(json.dumps(report) if args.json else _table(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
