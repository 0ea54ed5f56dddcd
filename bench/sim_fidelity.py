"""How faithfully the live sim engines follow the perf model and agree with the offline simulator.

    python bench/sim_fidelity.py [--json] [--slice-s 90] [--time-scale 0.5]

1. Light load: one colocated sim engine (llama-3.1-8b, H100, TP1, time scale 1), one streamed request
   at a time; its TTFT and TPOT against the perf model's prefill pass and decode step.
2. Under load: a live fleet (1 prefill + 2 decode sim engines on H100, a router, the load generator
   replaying the first `--slice-s` seconds of Azure conv, everything at `--time-scale`) against the
   offline simulator on the same requests and cluster: throughput (output tokens per model second)
   and SLO attainment (TTFT 1 s, TPOT 0.1 s).
Gaps are relative: |live - model| / model. Cost: light load is a fixed dozen requests; the loaded run
takes slice-s x time-scale seconds of wall time plus start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.common import add_json_flag, emit
from controlplane.planning.core.sim import ClusterSpec, PoolSpec, Slo, requests_from_trace, simulate
from profiler import catalog
from profiler.perfmodel import PerfModel
from profiler.traces import read_trace

NAME = "sim_fidelity"
ROOT = Path(__file__).resolve().parent.parent
MODEL, TIER = "llama-3.1-8b", "H100-SXM-80GB"
TTFT_SLO_S, TPOT_SLO_S = 1.0, 0.1
TRACE = ROOT / "data/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not healthy within {timeout_s} s")


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def sim_engine(started: list[subprocess.Popen[bytes]], role: str, name: str, time_scale: float) -> int:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "agents.engines.sim", "--role", role, "--model", MODEL, "--tier", TIER, "--port",
         str(port), "--name", name, "--time-scale", str(time_scale)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    started.append(process)
    wait_healthy(f"http://127.0.0.1:{port}", process)
    return port


def stream_once(client: httpx.Client, url: str, prompt_words: int, output_tokens: int) -> tuple[float, float]:
    """One streamed completion: (TTFT, TPOT) in seconds as the client sees them (one kept-alive client: a new
    connection per request would add its set-up to every TTFT)."""
    body = {"model": MODEL, "prompt": " ".join(["w"] * prompt_words), "max_tokens": output_tokens, "stream": True}
    began = time.perf_counter()
    stamps: list[float] = []
    with client.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                stamps.append(time.perf_counter())
    ttft = stamps[0] - began
    return ttft, (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def light_load() -> dict[str, float]:
    perf = PerfModel.for_names(MODEL, TIER)
    prompt, output = 2000, 48
    with processes() as started:
        url = f"http://127.0.0.1:{sim_engine(started, 'colocated', 'light', 1.0)}"
        with httpx.Client() as client:
            stream_once(client, url, 100, 4)  # the first request of a process runs slow; not measured
            runs = [stream_once(client, url, prompt, output) for _ in range(5)]
    ttft = statistics.median(run[0] for run in runs)
    tpot = statistics.median(run[1] for run in runs)
    model_ttft = perf.prefill_time_s([prompt])
    model_tpot = perf.decode_step_s(1, prompt + output // 2)
    return {"ttft_measured_s": ttft, "ttft_model_s": model_ttft, "tpot_measured_s": tpot, "tpot_model_s": model_tpot,
            "ttft_error": abs(ttft - model_ttft) / model_ttft, "tpot_error": abs(tpot - model_tpot) / model_tpot}


def loaded(slice_s: float, time_scale: float) -> dict[str, float]:
    records = [r for r in islice(read_trace(TRACE, "azure"), 5000) if (r.arrival_s or 0.0) < slice_s]
    requests = requests_from_trace(records, max_context=catalog.model(MODEL).max_context)
    with tempfile.TemporaryDirectory() as tmp, processes() as started:
        trace = Path(tmp) / "slice.jsonl"
        trace.write_text("".join(json.dumps({"arrival": r.arrival_s, "prompt": r.prompt_tokens,
                                             "output": r.output_tokens}) + "\n" for r in requests))
        pools = {"prefill": [("p0", sim_engine(started, "prefill", "p0", time_scale))],
                 "decode": [(f"d{i}", sim_engine(started, "decode", f"d{i}", time_scale)) for i in range(2)]}
        routing = {"service": "bench", "model": MODEL, "version": 1, "local_prefill_threshold": 0,
                   "pools": {role: [{"worker": f"bench/{name}", "port": port, "tier": TIER, "tp": 1, "weight": 1.0}
                                    for name, port in workers] for role, workers in pools.items()}}
        routing_file = Path(tmp) / "routing.json"
        routing_file.write_text(json.dumps(routing))
        router_port = free_port()
        router = subprocess.Popen(
            [sys.executable, "-m", "agents.router", "--port", str(router_port), "--routing-file", str(routing_file),
             "--no-require-api-key", "--spool-dir", str(Path(tmp) / "spool"), "--max-queue", "4096"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        started.append(router)
        wait_healthy(f"http://127.0.0.1:{router_port}", router)
        report = json.loads(subprocess.run(
            [sys.executable, "-m", "agents.loadgen", "--router", f"http://127.0.0.1:{router_port}", "--model", MODEL,
             "--trace", str(trace), "--format", "jsonl", "--columns",
             "arrival=arrival,prompt_tokens=prompt,output_tokens=output", "--speed", str(1 / time_scale), "--stream",
             "--ttft-slo", str(TTFT_SLO_S), "--tpot-slo", str(TPOT_SLO_S), "--time-scale", str(time_scale), "--json"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1])
    cluster = ClusterSpec(model=catalog.model(MODEL), pools=(
        PoolSpec.of(TIER, role="prefill", count=1), PoolSpec.of(TIER, role="decode", count=2)))
    offline = simulate(cluster, requests, Slo(TTFT_SLO_S, TPOT_SLO_S))
    live_throughput = report["output_tokens_per_s"] * time_scale  # per model second
    return {
        "requests": len(requests), "live_errors": sum(report["errors"].values()),
        "live_output_tokens_per_s": live_throughput, "sim_output_tokens_per_s": offline.output_tokens_per_s,
        "live_attainment": report["slo"]["attainment"], "sim_attainment": offline.attainment,
        "throughput_gap": abs(live_throughput - offline.output_tokens_per_s) / offline.output_tokens_per_s,
        "attainment_gap": abs(report["slo"]["attainment"] - offline.attainment),
        "live_ttft_p90_s": report["ttft_s"]["p90"], "sim_ttft_p90_s": offline.ttft.p90,
        "live_tpot_p90_s": report["tpot_s"]["p90"], "sim_tpot_p90_s": offline.tpot.p90,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice-s", type=float, default=90.0)
    parser.add_argument("--time-scale", type=float, default=0.5)
    add_json_flag(parser)
    args = parser.parse_args()
    light = light_load()
    load = loaded(args.slice_s, args.time_scale)
    metrics: dict[str, Any] = {
        "ttft_error": round(light["ttft_error"], 4), "tpot_error": round(light["tpot_error"], 4),
        "throughput_gap": round(load["throughput_gap"], 4), "attainment_gap": round(load["attainment_gap"], 4),
        "light": light, "loaded": load,
    }
    rows = [{"figure": key, "live": load[f"live_{key}"], "offline simulator": load[f"sim_{key}"]}
            for key in ("output_tokens_per_s", "attainment", "ttft_p90_s", "tpot_p90_s")]
    rows += [{"figure": "ttft_s (light)", "live": light["ttft_measured_s"], "offline simulator": light["ttft_model_s"]},
             {"figure": "tpot_s (light)", "live": light["tpot_measured_s"], "offline simulator": light["tpot_model_s"]}]
    emit(NAME, metrics, rows, as_json=args.json, results_dir=args.results_dir)


if __name__ == "__main__":
    main()
