"""The node agent's state directory: what must survive the agent's own restart.

Layout (the directory is 0700; every file is written atomically, 0600)::

    <state-dir>/
      agent.lock               held (flock) by the running agent: two agents never share a state dir
      credentials.json         {"control_plane", "name", "node_id", "token", ...}: the node token
      assignment.json          the last accepted assignment, as validated: {"node", "generation", "workers"}
      workers/<name>.json      a running worker's pid file: pid, start ticks, fingerprint, argv, restarts
      logs/<name>.log          a worker's stdout and stderr (one older file kept as <name>.log.1)
      routing/<name>.json      the routing plan a router worker reads

A worker pid file outlives the agent on purpose: an agent killed outright leaves its workers serving,
and the next agent adopts them (same process, same fingerprint) or stops them. WorkerProcess is the
handle on such a process, whether this agent started it or found it by its pid file: the pid with
the kernel's start time, so a reused pid is never taken for a worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A worker log past this size is moved aside (one generation kept) when the worker starts again.
MAX_LOG_BYTES = 20 * 2**20


class StateError(RuntimeError):
    """The state directory cannot be used (locked by another agent, not writable)."""


@dataclass(frozen=True)
class Credentials:
    """The node's identity at one control plane. The token never appears in a repr or a log."""

    control_plane: str
    name: str
    node_id: int
    token: str = field(repr=False)
    # What the node registered as: when one changes, the agent registers again to tell the control plane.
    agent_url: str = ""
    tier: str = ""
    gpu_count: int = 0


@dataclass(frozen=True)
class PidRecord:
    """A worker process the agent started: enough to find it again and to tell it from a reused pid."""

    name: str
    pid: int
    start_ticks: int | None
    fingerprint: str
    argv: tuple[str, ...]
    started_at: float
    restarts: int = 0


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None where /proc cannot say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """Is ``pid`` still the process that started at ``start_ticks`` (and not a zombie)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: the pid alone has to do
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] not in ("Z", "X") and (start_ticks is None or int(fields[19]) == start_ticks)


class WorkerProcess:
    """A worker's process: one this agent started, or one a previous agent left (adopted)."""

    def __init__(self, pid: int, start_ticks: int | None, popen: subprocess.Popen[bytes] | None) -> None:
        self.pid, self.start_ticks, self.popen = pid, start_ticks, popen

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return process_alive(self.pid, self.start_ticks)

    def exit_code(self) -> int | None:
        """The exit status (negative: the signal); None for an adopted process, whose status went to init."""
        return self.popen.returncode if self.popen is not None else None

    def signal_group(self, signum: int) -> None:
        # Our own children's group outlives its leader while any member lives, so it is safe to signal
        # after the leader exited; an adopted pid is only signalled while it is provably the same process.
        if self.popen is None and not self.alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exited (status unknown: adopted process)"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so a reader (or a crash) sees the old file or the new, never half."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_json(path: Path, value: Any) -> None:
    atomic_write(path, json.dumps(value, sort_keys=True, indent=1).encode())


def _read_json(path: Path) -> Any:
    """The file's JSON; None when it is missing or unreadable (logged: the agent then starts without it)."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("ignoring unreadable state file %s: %s", path, error)
        return None


class StateDir:
    """One agent's state directory (see the module docstring for its layout)."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        for directory in (self.path, self.path / "workers", self.path / "logs", self.path / "routing"):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        self._lock_fd: int | None = None

    # --- the lock ---

    def lock(self) -> None:
        """Hold the directory for this process; StateError when another agent holds it."""
        descriptor = os.open(self.path / "agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise StateError(f"another agent is running with the state directory {self.path}") from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._lock_fd = descriptor

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- credentials ---

    @property
    def credentials_path(self) -> Path:
        return self.path / "credentials.json"

    def load_credentials(self) -> Credentials | None:
        """The stored node token, or None (never registered, or the file is unusable)."""
        data = _read_json(self.credentials_path)
        if not isinstance(data, dict):
            return None
        try:
            return Credentials(
                control_plane=str(data["control_plane"]),
                name=str(data["name"]),
                node_id=int(data["node_id"]),
                token=str(data["token"]),
                agent_url=str(data.get("agent_url", "")),
                tier=str(data.get("tier", "")),
                gpu_count=int(data.get("gpu_count", 0)),
            )
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring malformed %s", self.credentials_path)
            return None

    def save_credentials(self, credentials: Credentials) -> None:
        _write_json(self.credentials_path, asdict(credentials))

    # --- the assignment ---

    @property
    def assignment_path(self) -> Path:
        return self.path / "assignment.json"

    def load_assignment(self) -> dict[str, Any] | None:
        data = _read_json(self.assignment_path)
        return data if isinstance(data, dict) else None

    def save_assignment(self, body: Mapping[str, Any]) -> None:
        _write_json(self.assignment_path, dict(body))

    # --- workers ---

    def pid_path(self, name: str) -> Path:
        return self.path / "workers" / f"{name}.json"

    def save_pid(self, record: PidRecord) -> None:
        _write_json(self.pid_path(record.name), {**asdict(record), "argv": list(record.argv)})

    def remove_pid(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pid_path(name).unlink()

    def pid_records(self) -> Iterator[PidRecord]:
        """Every worker pid file; malformed ones are removed."""
        for path in sorted((self.path / "workers").glob("*.json")):
            data = _read_json(path)
            try:
                if not isinstance(data, dict):
                    raise TypeError("not an object")
                record = PidRecord(
                    name=str(data["name"]),
                    pid=int(data["pid"]),
                    start_ticks=None if data.get("start_ticks") is None else int(data["start_ticks"]),
                    fingerprint=str(data["fingerprint"]),
                    argv=tuple(str(arg) for arg in data["argv"]),
                    started_at=float(data["started_at"]),
                    restarts=int(data.get("restarts", 0)),
                )
            except (KeyError, TypeError, ValueError):
                log.warning("removing malformed pid file %s", path)
                path.unlink(missing_ok=True)
                continue
            yield record

    def log_path(self, name: str) -> Path:
        """The worker's log file, the previous one moved aside first when it has grown too big."""
        path = self.path / "logs" / f"{name}.log"
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > MAX_LOG_BYTES:
                os.replace(path, path.with_suffix(".log.1"))
        return path

    def routing_path(self, name: str) -> Path:
        return self.path / "routing" / f"{name}.json"

    def save_routing(self, name: str, routing: Mapping[str, Any]) -> Path:
        path = self.routing_path(name)
        _write_json(path, dict(routing))
        return path

    def remove_routing(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.routing_path(name).unlink()
