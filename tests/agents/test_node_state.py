"""The state directory: private files written whole, one agent at a time, and pid files that survive it."""

from __future__ import annotations

import pytest

from agents.state import Credentials, PidRecord, StateDir, StateError


def test_credentials_are_private_and_never_shown(tmp_path):
    state = StateDir(tmp_path / "state")
    credentials = Credentials("http://cp", "node-a", 7, "secret-token", agent_url="http://a:9100")
    state.save_credentials(credentials)
    assert (state.path / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert state.path.stat().st_mode & 0o777 == 0o700
    assert state.load_credentials() == credentials
    assert "secret-token" not in repr(credentials)
    assert not list(state.path.glob(".credentials.json.*"))  # no temporary file left


def test_an_unreadable_file_is_as_good_as_none(tmp_path):
    state = StateDir(tmp_path)
    (tmp_path / "credentials.json").write_text("{not json")
    (tmp_path / "assignment.json").write_text("[]")
    assert state.load_credentials() is None
    assert state.load_assignment() is None


def test_two_agents_cannot_share_a_state_directory(tmp_path):
    first = StateDir(tmp_path)
    first.lock()
    with pytest.raises(StateError, match="another agent"):
        StateDir(tmp_path).lock()
    first.unlock()
    StateDir(tmp_path).lock()


def test_pid_records_round_trip_and_malformed_ones_are_removed(tmp_path):
    state = StateDir(tmp_path)
    record = PidRecord("w", 123, 456, "f" * 32, ("python", "-m", "x"), 1.5, restarts=2)
    state.save_pid(record)
    (tmp_path / "workers" / "broken.json").write_text('{"name": "broken"}')
    assert list(state.pid_records()) == [record]
    assert not (tmp_path / "workers" / "broken.json").exists()
    state.remove_pid("w")
    assert list(state.pid_records()) == []
