"""Worker processes: start them with their engine's launcher, watch them, restart them, stop them.

Each worker is one task that launches the engine (argv and environment from the engine's launcher,
pinned to its GPUs), polls its health URL (ready = 200), and on a crash restarts it after an
exponential backoff (doubling, capped) that is reset once the worker has stayed healthy a while.

Workers run in their own session (process group), so stopping one reaches every process it forked
(TP ranks), and so they outlive an agent that is killed outright: the control plane going away, or
the agent crashing, never takes the serving workers down. The agent stops its workers on a clean
shutdown (SIGTERM, then SIGKILL after a grace period); a restarted agent finds the ones it left by
their pid files (pid plus kernel start time, so a reused pid is never mistaken for a worker) and
adopts those its assignment still wants unchanged, stopping the rest.

A worker no launcher can run (an engine nobody registered, or a router before the router launcher
exists) is reported ``failed`` with the reason, and the others run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from agents.engines import EngineError
from agents.reconcile import AssignedWorker, Assignment, Launch, NoLauncherError, clash, prepare
from agents.state import PidRecord, StateDir, WorkerProcess, describe_exit, process_alive, process_start_ticks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupervisorConfig:
    """How workers are run and watched. Times in seconds."""

    worker_host: str = "127.0.0.1"
    time_scale: float | None = None
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    healthy_reset_s: float = 60.0
    stop_grace_s: float = 30.0
    start_timeout_s: float = 900.0
    probe_interval_s: float = 0.5
    # Probes come faster while a worker starts, so readiness is seen within a tenth of a second.
    starting_probe_s: float = 0.1
    # Consecutive failed health probes before a ready worker is reported failed (it is left running).
    unhealthy_after: int = 3


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``event``; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(timeout_s, 0.0))
    return event.is_set()


@dataclass
class _Drain:
    deadline_at: float
    requested_at: float
    drained: bool = False
    outcome: str = ""


class _Worker:
    """The mutable state of one supervised worker; only its task and the Supervisor change it."""

    def __init__(self, worker: AssignedWorker, after: list[asyncio.Event]) -> None:
        self.worker = worker
        self.after = after
        self.launch: Launch | None = None
        self.process: WorkerProcess | None = None
        self.phase = "pending"  # pending | running | backoff | failed | stopped
        self.reason = ""
        self.restarts = 0
        self.last_exit: int | None = None
        self.ready = False
        self.was_ready = False
        self.ready_since: float | None = None
        self.started_at: float | None = None
        self.failed_probes = 0
        self.drain: _Drain | None = None
        self.drain_task: asyncio.Task[None] | None = None
        self.stop_requested = asyncio.Event()
        self.stopped = asyncio.Event()
        self.launched = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def status(self) -> str:
        """The heartbeat's status: pending, starting, ready, draining, stopped or failed."""
        if self.phase == "running":
            if self.drain is not None or self.stop_requested.is_set():
                return "draining"
            if self.ready:
                return "ready"
            return "failed" if self.was_ready else "starting"
        return "failed" if self.phase == "backoff" else self.phase

    def view(self) -> dict[str, Any]:
        drain = self.drain
        return {
            **self.worker.report(self.status), "reason": self.reason,
            "healthy": self.phase == "running" and self.failed_probes == 0 and self.ready, "ready": self.ready,
            "pid": self.process.pid if self.process is not None else None, "restarts": self.restarts,
            "last_exit": self.last_exit, "started_at": self.started_at, "stopping": self.stop_requested.is_set(),
            "draining": drain is not None, "drained": drain is not None and drain.drained,
            "drain_outcome": drain.outcome if drain is not None else None,
        }  # fmt: skip


class Supervisor:
    """Runs the assignment's workers: one task per worker, plus those being stopped."""

    def __init__(self, config: SupervisorConfig, state: StateDir, http: httpx.AsyncClient) -> None:
        self.config = config
        self.state = state
        self.http = http
        self._workers: dict[str, _Worker] = {}
        self._stopping: list[_Worker] = []

    def prepare(self, worker: AssignedWorker) -> Launch:
        """How this node runs ``worker`` (see ``agents.reconcile.prepare``)."""
        config = self.config
        return prepare(
            worker, host=config.worker_host, time_scale=config.time_scale,
            routing_file=self.state.routing_path(worker.name),
        )  # fmt: skip

    # --- what the reconciler calls ---

    def running(self) -> dict[str, AssignedWorker]:
        """The workers the supervisor keeps running (not those being stopped), by name."""
        return {name: state.worker for name, state in self._workers.items()}

    def start(self, worker: AssignedWorker, *, adopt: PidRecord | None = None) -> None:
        """Run ``worker`` once every clashing worker being stopped is gone."""
        after = [old.stopped for old in self._stopping if clash(old.worker, worker)]
        state = _Worker(worker, after)
        self._workers[worker.name] = state
        state.task = asyncio.get_running_loop().create_task(self._supervise(state, adopt), name=worker.name)

    def stop(self, name: str) -> asyncio.Event:
        """Stop the worker; the event is set once it is gone."""
        state = self._workers.pop(name)
        if not state.stopped.is_set():
            self._stopping.append(state)
        state.stop_requested.set()
        return state.stopped

    def update(self, worker: AssignedWorker) -> None:
        """Take a worker's new service, plan or routing without restarting it."""
        state = self._workers[worker.name]
        state.worker = worker
        if worker.role == "router" and worker.routing is not None:
            self.state.save_routing(worker.name, worker.routing)

    async def launched(self, names: Iterable[str]) -> None:
        """Wait until each named worker has been launched (or found impossible to launch)."""
        for name in names:
            state = self._workers.get(name)
            if state is not None:
                await state.launched.wait()

    def views(self) -> list[dict[str, Any]]:
        """Every worker's state, as ``GET /v1/status`` shows it; one per name (a running one first)."""
        seen = set(self._workers)
        out = [state.view() for state in self._workers.values()]
        for state in self._stopping:
            if state.worker.name not in seen and not state.stopped.is_set():
                seen.add(state.worker.name)
                out.append(state.view())
        return sorted(out, key=lambda view: str(view["name"]))

    def launches(self) -> list[tuple[AssignedWorker, Launch, int]]:
        """The workers with a live process, one per name: what they are, how they run, and their pid."""
        stopping = [state for state in self._stopping if state.worker.name not in self._workers]
        return [
            (state.worker, state.launch, state.process.pid)
            for state in [*self._workers.values(), *stopping]
            if state.launch is not None and state.process is not None and state.phase == "running"
        ]

    def drain(self, name: str, deadline_s: float) -> dict[str, Any]:
        """Mark the worker draining and watch it until it is idle or the deadline passes; KeyError if unknown."""
        state = self._workers[name]
        now = time.monotonic()
        if state.drain is None:
            state.drain = _Drain(deadline_at=now + deadline_s, requested_at=time.time())
            state.drain_task = asyncio.get_running_loop().create_task(self._watch_drain(state), name=f"drain-{name}")
            log.info("draining worker %s (deadline %.0f s)", name, deadline_s)
        elif not state.drain.drained:
            state.drain.deadline_at = now + deadline_s
        return state.view()

    async def stop_all(self) -> None:
        """Stop every worker and wait until they are all gone."""
        events = [self.stop(name) for name in list(self._workers)]
        events += [state.stopped for state in self._stopping]
        for event in events:
            await event.wait()

    async def recover(self, assignment: Assignment) -> dict[str, PidRecord]:
        """Sort the workers a previous agent left: those to adopt (returned), the rest stopped."""
        wanted = {worker.name: worker for worker in assignment.workers}
        adopt: dict[str, PidRecord] = {}
        for record in self.state.pid_records():
            if not process_alive(record.pid, record.start_ticks):
                self.state.remove_pid(record.name)
                continue
            worker = wanted.get(record.name)
            try:
                fits = worker is not None and self.prepare(worker).fingerprint == record.fingerprint
            except (NoLauncherError, EngineError):
                fits = False
            if fits:
                adopt[record.name] = record
                continue
            log.info("stopping worker %s (pid %d) left by a previous agent: no longer assigned as it runs",
                     record.name, record.pid)  # fmt: skip
            # Under its assigned shape where it has one, so that a clashing new worker waits for it.
            placeholder = AssignedWorker(name=record.name, role="colocated", engine="", model="", tp=1,
                                         gpu_ids=(), port=0, tier="")  # fmt: skip
            stale = _Worker(worker or placeholder, [])
            stale.process = WorkerProcess(record.pid, record.start_ticks, None)
            stale.stop_requested.set()
            self._stopping.append(stale)
            stale.task = asyncio.get_running_loop().create_task(self._retire(stale), name=f"retire-{record.name}")
        return adopt

    # --- the worker tasks ---

    async def _supervise(self, state: _Worker, adopt: PidRecord | None) -> None:
        error: Exception | None = None
        try:
            await self._run(state, adopt)
        except Exception as raised:  # a bug here must not leave a worker unwatched without a word
            log.exception("supervising worker %s failed", state.worker.name)
            error = raised
        finally:
            state.launched.set()
            await self._retire(state)
            if error is not None:
                state.phase, state.reason = "failed", f"agent error: {error!r}"

    async def _run(self, state: _Worker, adopt: PidRecord | None) -> None:
        config, name = self.config, state.worker.name
        for event in state.after:
            while not event.is_set() and not state.stop_requested.is_set():
                await _wait(event, 1.0)
        if state.stop_requested.is_set():
            return
        try:
            state.launch = self.prepare(state.worker)
        except (NoLauncherError, EngineError) as error:
            state.phase, state.reason = "failed", str(error)
            log.error("worker %s cannot run: %s", name, error)
            return
        if state.worker.role == "router" and state.worker.routing is not None:
            self.state.save_routing(name, state.worker.routing)
        backoff = config.backoff_initial_s
        if adopt is not None:
            state.process = WorkerProcess(adopt.pid, adopt.start_ticks, None)
            state.restarts, state.started_at = adopt.restarts, adopt.started_at
            log.info("adopted worker %s (pid %d)", name, adopt.pid)
        while not state.stop_requested.is_set():
            if state.process is None:
                try:
                    state.process = self._spawn(state, state.launch)
                except OSError as error:
                    state.phase, state.reason = "backoff", f"cannot start: {error}"
                    log.error("worker %s cannot start: %s; retrying in %.1f s", name, error, backoff)
                    state.launched.set()
                    if await _wait(state.stop_requested, backoff):
                        break
                    backoff = min(backoff * 2, config.backoff_max_s)
                    continue
            state.phase = "running"
            state.launched.set()
            await self._watch(state, state.process, state.launch, adopted=adopt is not None)
            adopt = None
            if state.stop_requested.is_set():
                break
            process, state.process = state.process, None
            process.signal_group(signal.SIGKILL)  # what it forked dies with it
            self.state.remove_pid(name)
            now = time.monotonic()
            if state.ready_since is not None and now - state.ready_since >= config.healthy_reset_s:
                backoff = config.backoff_initial_s
            state.restarts += 1
            state.last_exit = process.exit_code()
            state.phase, state.ready, state.was_ready, state.ready_since = "backoff", False, False, None
            state.reason = describe_exit(state.last_exit) + (f" ({state.reason})" if state.reason else "")
            log.warning("worker %s %s; restart %d in %.1f s", name, state.reason, state.restarts, backoff)
            if await _wait(state.stop_requested, backoff):
                break
            backoff = min(backoff * 2, config.backoff_max_s)

    async def _retire(self, state: _Worker) -> None:
        """Stop the worker's process if it has one, and forget it."""
        process = state.process
        if process is not None:
            await self._terminate(state.worker.name, process)
            self.state.remove_pid(state.worker.name)
        if state.worker.role == "router":
            self.state.remove_routing(state.worker.name)
        if state.phase != "failed" or process is not None:
            state.phase = "stopped"
        state.process, state.ready = None, False
        state.stopped.set()
        if state in self._stopping:
            self._stopping.remove(state)

    def _spawn(self, state: _Worker, launch: Launch) -> WorkerProcess:
        name = state.worker.name
        descriptor = os.open(self.state.log_path(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {shlex.join(launch.argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                launch.argv, env=dict(launch.env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.state.path, start_new_session=True,
            )  # fmt: skip
        process = WorkerProcess(popen.pid, process_start_ticks(popen.pid), popen)
        state.started_at, state.reason = time.time(), ""
        self.state.save_pid(
            PidRecord(name=name, pid=process.pid, start_ticks=process.start_ticks, fingerprint=launch.fingerprint,
                      argv=launch.argv, started_at=state.started_at, restarts=state.restarts)
        )  # fmt: skip
        log.info("started worker %s (pid %d) on GPUs %s", name, process.pid, list(launch.spec.gpu_ids))
        return process

    async def _watch(self, state: _Worker, process: WorkerProcess, launch: Launch, *, adopted: bool = False) -> None:
        """Probe the worker until its process exits, it fails to come up in time, or it is asked to stop."""
        config = self.config
        spawned = time.monotonic()
        while process.alive():
            healthy = await self._probe(launch.health_url)
            now = time.monotonic()
            if healthy:
                state.failed_probes = 0
                if not state.ready:
                    state.ready, state.was_ready, state.ready_since = True, True, now
                    since = "adopted" if adopted else f"{now - spawned:.1f} s after launch"
                    log.info("worker %s ready (%s)", state.worker.name, since)
            elif state.was_ready:
                state.failed_probes += 1
                if state.failed_probes >= config.unhealthy_after and state.ready:
                    state.ready, state.reason = False, "health check failing"
                    log.warning("worker %s stopped answering its health check", state.worker.name)
            elif now - spawned > config.start_timeout_s:
                state.reason = f"not ready within {config.start_timeout_s:.0f} s"
                await self._terminate(state.worker.name, process)
                return
            interval = config.probe_interval_s if state.was_ready else config.starting_probe_s
            if await _wait(state.stop_requested, interval):
                return

    async def _probe(self, url: str) -> bool:
        try:
            response = await self.http.get(url, timeout=max(self.config.probe_interval_s * 2, 1.0))
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _terminate(self, name: str, process: WorkerProcess) -> None:
        """SIGTERM the worker's process group, SIGKILL it after the grace period."""
        if process.alive():
            process.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + self.config.stop_grace_s
            while process.alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if process.alive():
                log.warning("worker %s did not stop within %.0f s: killing it", name, self.config.stop_grace_s)
        process.signal_group(signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while process.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if process.alive():
            log.error("worker %s (pid %d) survives SIGKILL; giving up on it", name, process.pid)
        else:
            log.info("worker %s stopped (pid %d)", name, process.pid)

    async def _watch_drain(self, state: _Worker) -> None:
        drain = state.drain
        assert drain is not None
        while not drain.drained:
            launch, process = state.launch, state.process
            if launch is None or process is None or not process.alive():
                drain.drained, drain.outcome = True, "not running"
            else:
                metrics = await launch.scrape(self.http)
                if metrics is not None and metrics.requests_running + metrics.requests_waiting == 0:
                    drain.drained, drain.outcome = True, "idle"
                elif time.monotonic() >= drain.deadline_at:
                    drain.drained, drain.outcome = True, "deadline"
                else:
                    await asyncio.sleep(self.config.probe_interval_s)
        log.info("worker %s drained (%s)", state.worker.name, drain.outcome)
