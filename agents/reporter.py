"""What the agent tells the control plane: heartbeats, and samples of its GPUs and workers.

Heartbeats go every ``heartbeat_s`` with the generation applied and each worker's status. Samples are
taken every ``sample_s``: one per GPU from the GpuReader, one per worker from its ``/metrics`` (rates
and latency percentiles between two scrapes of the same process). The simulated GPUs, when the node
has no NVML, are driven by the sim workers' step counters between those scrapes.

Latencies are reported in model time. A simulated worker runs its perf model's steps ``time_scale``
times as fast or slow as a GPU would (the demo speeds them up), so its wall-clock TTFT and ITL are the
model's times multiplied by that scale: they are divided by the scale it declares in
``cleave_sim_info`` before they leave, or every comparison of measured with predicted step times (the
control plane's perf-model corrections) would be off by the demo's speed-up. Token rates stay per
wall-clock second: they are what the fleet served.

Samples wait in a bounded buffer until the control plane takes them; while it is away the buffer
keeps the newest (the oldest are dropped and counted, logged once per outage). A batch that fails
is sent again whole: the control plane stores each (GPU, time) and (worker, time) once, so a resent
batch never duplicates. A batch it refuses as malformed loses only the samples it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import httpx

from agents.control_plane import ControlPlane, ControlPlaneError, Rejected, Unauthorized
from agents.engines import WorkerMetrics
from agents.engines.metrics import SimActivity, rates_between
from agents.gpu import GpuReader, GpuReadError, SimulatedGpuReader
from agents.reconcile import AssignedWorker, Launch, Reconciler
from agents.supervisor import Supervisor

log = logging.getLogger(__name__)

Sample = tuple[str, dict[str, Any]]  # ("node" | "worker", the sample as the control plane takes it)
_FIELD_INDEX = re.compile(r"^(node|worker)_samples\[(\d+)\]")


class SampleBuffer:
    """Samples not yet delivered, oldest first, at most ``max_samples`` of them."""

    def __init__(self, max_samples: int) -> None:
        if max_samples < 1:
            raise ValueError(f"the buffer must hold at least one sample, got {max_samples}")
        self.max_samples = max_samples
        self._items: deque[Sample] = deque()
        self.dropped = 0
        self._warned = False

    def __len__(self) -> int:
        return len(self._items)

    def add(self, kind: str, sample: dict[str, Any]) -> None:
        self._items.append((kind, sample))
        self._bound()

    def take(self, count: int) -> list[Sample]:
        """Remove and return up to ``count`` of the oldest samples (give them back if they fail)."""
        return [self._items.popleft() for _ in range(min(count, len(self._items)))]

    def give_back(self, samples: Sequence[Sample]) -> None:
        """Put samples that could not be delivered back in front, in their order."""
        self._items.extendleft(reversed(samples))
        self._bound()

    def delivered(self) -> None:
        """The buffer emptied: a later overflow is logged again."""
        self._warned = False

    def _bound(self) -> None:
        while len(self._items) > self.max_samples:
            self._items.popleft()
            self.dropped += 1
            if not self._warned:
                self._warned = True
                log.warning("sample buffer full (%d): dropping the oldest until the control plane is back",
                            self.max_samples)  # fmt: skip


def _finite(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def time_scale_of(metrics: WorkerMetrics) -> float:
    """Wall-clock seconds per model second of a worker: its declared ``time_scale`` (a sim), else 1."""
    try:
        scale = float(metrics.info.get("time_scale", 1.0))
    except (TypeError, ValueError):
        return 1.0
    return scale if math.isfinite(scale) and scale > 0 else 1.0


def _model_time(value_s: float | None, scale: float) -> float | None:
    return None if value_s is None else _finite(value_s / scale if scale != 1.0 else value_s)


class Reporter:
    """The heartbeat and sampling loops of one agent."""

    def __init__(
        self,
        control_plane: ControlPlane,
        supervisor: Supervisor,
        reconciler: Reconciler,
        gpus: GpuReader | None,
        *,
        http: httpx.AsyncClient,
        agent_version: str,
        buffer_samples: int = 100_000,
        batch_samples: int = 5_000,
    ) -> None:
        self.control_plane = control_plane
        self.supervisor = supervisor
        self.reconciler = reconciler
        self.gpus = gpus
        self.http = http
        self.agent_version = agent_version
        self.buffer = SampleBuffer(buffer_samples)
        self.batch_samples = batch_samples
        self.collected = 0
        self.delivered = 0
        self.rejected = 0
        self.in_flight = 0
        self.last_heartbeat_at: float | None = None
        self.generation_desired: int | None = None
        self._reachable: bool | None = None
        self._complaint = ""
        self._previous: dict[str, tuple[int, WorkerMetrics, float]] = {}
        self._placed: set[str] = set()
        self._gpu_error_logged = False
        self._collected_event = asyncio.Event()

    def stats(self) -> dict[str, Any]:
        return {
            "collected": self.collected, "delivered": self.delivered, "buffered": len(self.buffer) + self.in_flight,
            "dropped": self.buffer.dropped, "rejected": self.rejected, "reachable": bool(self._reachable),
            "last_heartbeat_at": self.last_heartbeat_at, "generation_desired": self.generation_desired,
        }  # fmt: skip

    def _complain(self, message: str) -> None:
        # The same refusal comes back every few seconds until an operator acts: say it once.
        if message != self._complaint:
            log.error("%s", message)
            self._complaint = message

    def _reached(self, ok: bool, error: Exception | None = None) -> None:
        if ok and self._reachable is not True:
            log.info("control plane reachable at %s", self.control_plane.url)
        elif not ok and self._reachable is not False:
            log.warning("control plane unreachable (%s): workers keep running, samples are buffered", error)
        self._reachable = ok

    # --- heartbeats ---

    async def heartbeat(self, *, final: bool = False) -> bool:
        """Send one heartbeat; whether the control plane took it."""
        if final:
            workers = [worker.report("stopped") for worker in self.reconciler.desired.workers]
        else:
            fields = ("name", "role", "engine", "model", "tp", "gpu_ids", "port", "status", "service", "plan")
            workers = [{key: view[key] for key in fields} for view in self.supervisor.views()]
        body = {
            "generation_applied": self.reconciler.applied_generation, "agent_version": self.agent_version,
            "workers": workers,
        }  # fmt: skip
        try:
            answer = await self.control_plane.heartbeat(body)
        except (Rejected, Unauthorized) as error:
            self._complain(f"heartbeat refused: {error} {getattr(error, 'fields', '') or ''}".rstrip())
            return False
        except ControlPlaneError as error:
            self._reached(False, error)
            return False
        self._reached(True)
        self._complaint = ""
        self.last_heartbeat_at = time.time()
        if answer.generation_desired != self.generation_desired and answer.generation_desired > max(
            self.reconciler.desired.generation, 0
        ):
            log.info("the control plane holds generation %d for this node (this agent: %d); it will push it",
                     answer.generation_desired, self.reconciler.desired.generation)  # fmt: skip
        self.generation_desired = answer.generation_desired
        return True

    async def run_heartbeats(self, interval_s: float, *, watch_s: float = 0.2) -> None:
        """A heartbeat every ``interval_s``, and one as soon as a worker's status or the generation changes."""
        last: object = None
        next_at = 0.0
        while True:
            summary = (self.reconciler.applied_generation,
                       [(view["name"], view["status"]) for view in self.supervisor.views()])  # fmt: skip
            if time.monotonic() >= next_at or summary != last:
                last = summary
                try:
                    await self.heartbeat()
                except Exception:  # a bug in one heartbeat must not end them
                    log.exception("heartbeat failed")
                next_at = time.monotonic() + interval_s
            await asyncio.sleep(watch_s)

    # --- samples ---

    async def run_sampling(self, interval_s: float) -> None:
        next_at = time.monotonic()
        while True:
            try:
                await self.collect()
            except Exception:  # a bug in one tick must not end reporting
                log.exception("sample collection failed")
            next_at += interval_s
            await asyncio.sleep(max(next_at - time.monotonic(), 0.0))

    async def run_sending(self, retry_s: float) -> None:
        while True:
            self._collected_event.clear()
            try:
                await self.flush()
            except Exception:  # a bug in one delivery must not end them; the samples stay buffered
                log.exception("sample delivery failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._collected_event.wait(), retry_s)

    async def collect(self) -> None:
        """Take one sample of every GPU and every running worker into the buffer."""
        now, clock = round(time.time(), 3), time.monotonic()
        launches = self.supervisor.launches()
        reader = self.gpus if isinstance(self.gpus, SimulatedGpuReader) else None
        if reader is not None:
            self._place(reader, launches)
        scrapes = await asyncio.gather(*(launch.scrape(self.http) for _, launch, _ in launches))
        alive = set()
        for (worker, _, pid), metrics in zip(launches, scrapes, strict=True):
            alive.add(worker.name)
            if metrics is None:
                continue
            previous = self._previous.get(worker.name)
            self._previous[worker.name] = (pid, metrics, clock)
            if previous is None or previous[0] != pid or clock <= previous[2]:
                continue  # a first scrape of this process: the baseline for the next
            interval = clock - previous[2]
            rates = rates_between(previous[1], metrics, interval)
            scale = time_scale_of(metrics)
            self._add("worker", {
                "ts": now, "worker": worker.name, "role": worker.role, "service": worker.service,
                "requests_running": max(metrics.requests_running, 0),
                "requests_waiting": max(metrics.requests_waiting, 0),
                "kv_cache_usage": min(max(metrics.kv_cache_usage, 0.0), 1.0),
                "prompt_tokens_per_s": max(rates.prompt_tokens_per_s, 0.0),
                "generation_tokens_per_s": max(rates.generation_tokens_per_s, 0.0),
                "ttft_p50_s": _model_time(rates.ttft_p50_s, scale), "ttft_p90_s": _model_time(rates.ttft_p90_s, scale),
                "itl_p50_s": _model_time(rates.itl_p50_s, scale), "itl_p90_s": _model_time(rates.itl_p90_s, scale),
            })  # fmt: skip
            if reader is not None and metrics.sim is not None and worker.name in self._placed:
                earlier = previous[1].sim or SimActivity()
                reader.observe(worker.name, metrics.sim.minus(earlier), interval)
        for name in set(self._previous) - alive:
            del self._previous[name]
        await self._read_gpus(now)
        self._collected_event.set()

    def _place(self, reader: SimulatedGpuReader, launches: Sequence[tuple[AssignedWorker, Launch, int]]) -> None:
        current = {worker.name: (worker, launch) for worker, launch, _ in launches if launch.launcher.name == "sim"}
        for name in self._placed - set(current):
            reader.remove(name)
            self._placed.discard(name)
        for name, (worker, launch) in current.items():
            if name in self._placed:
                continue
            capacity = launch.spec.engine_args.get("kv_capacity_tokens")
            try:
                reader.place(
                    name, worker.gpu_ids, worker.model, worker.tp, worker.dtype,
                    kv_capacity_tokens=int(capacity) if capacity is not None else None,
                )  # fmt: skip
            except (ValueError, LookupError) as error:
                log.warning("worker %s cannot be placed on the simulated GPUs: %s", name, error)
            self._placed.add(name)

    async def _read_gpus(self, now: float) -> None:
        if self.gpus is None:
            return
        try:
            if isinstance(self.gpus, SimulatedGpuReader):
                readings = self.gpus.read()
            else:
                readings = await asyncio.to_thread(self.gpus.read)
        except GpuReadError as error:
            if not self._gpu_error_logged:
                log.error("cannot read the GPUs: %s", error)
                self._gpu_error_logged = True
            return
        self._gpu_error_logged = False
        for reading in readings:
            self._add("node", {
                "ts": now, "gpu_index": reading.index,
                "utilization": round(min(max(reading.utilization, 0.0), 1.0), 6),
                "power_w": round(max(reading.power_w, 0.0), 3),
                "memory_used_bytes": int(reading.memory_used_bytes),
                "memory_total_bytes": int(reading.memory_total_bytes),
                "temperature_c": round(reading.temperature_c, 2),
            })  # fmt: skip

    def _add(self, kind: str, sample: dict[str, Any]) -> None:
        self.collected += 1
        self.buffer.add(kind, sample)

    async def flush(self) -> bool:
        """Send the buffer in batches until it is empty (True) or the control plane cannot take more."""
        try:
            return await self._flush()
        finally:
            self.in_flight = 0

    async def _flush(self) -> bool:
        while len(self.buffer):
            samples = self.buffer.take(self.batch_samples)
            node = [sample for kind, sample in samples if kind == "node"]
            worker = [sample for kind, sample in samples if kind == "worker"]
            self.in_flight = len(samples)
            try:
                await self.control_plane.send_samples({"node_samples": node, "worker_samples": worker})
            except Rejected as error:
                if error.status_code != 400:
                    self.buffer.give_back(samples)
                    self._complain(f"samples refused: {error}")
                    return False
                self.buffer.give_back(self._without_bad(node, worker, error))
                continue
            except Unauthorized as error:
                self.buffer.give_back(samples)
                self._complain(f"samples refused: {error}")
                return False
            except ControlPlaneError as error:
                self.buffer.give_back(samples)
                self._reached(False, error)
                return False
            except BaseException:  # cancelled by the shutdown (the final flush sends them again), or a bug
                self.buffer.give_back(samples)
                raise
            self._reached(True)
            self.delivered += len(samples)
        self.buffer.delivered()
        return True

    def _without_bad(self, node: list[dict[str, Any]], worker: list[dict[str, Any]], error: Rejected) -> list[Sample]:
        """The samples of a refused batch that the control plane did not name as bad."""
        bad: dict[str, set[int]] = {"node": set(), "worker": set()}
        for name in error.fields:
            match = _FIELD_INDEX.match(name)
            if match:
                bad[match.group(1)].add(int(match.group(2)))
        if not bad["node"] and not bad["worker"]:
            log.error("a batch of %d samples was refused and dropped: %s", len(node) + len(worker), error)
            self.rejected += len(node) + len(worker)
            return []
        self.rejected += len(bad["node"]) + len(bad["worker"])
        log.error("dropping %d malformed sample(s): %s", len(bad["node"]) + len(bad["worker"]), error.fields)
        return [("node", sample) for index, sample in enumerate(node) if index not in bad["node"]] + [
            ("worker", sample) for index, sample in enumerate(worker) if index not in bad["worker"]
        ]
