"""The agent's command line: defaults, the token from the environment, and errors that name the flag."""

from __future__ import annotations

import pytest

from agents.node import build_parser, config_from_args


def config(*argv):
    parser = build_parser()
    return config_from_args(parser.parse_args(["--control-plane", "http://cp/", "--tier", "H100-SXM-80GB",
                                               "--gpus", "8", "--name", "node-a", *argv]), parser)


def test_defaults(monkeypatch):
    monkeypatch.delenv("CLEAVE_BOOTSTRAP_TOKEN", raising=False)
    agent = config()
    assert (agent.control_plane, agent.listen_host, agent.listen_port) == ("http://cp", "127.0.0.1", 9100)
    assert agent.advertise_url == "http://127.0.0.1:9100"
    assert str(agent.state_dir) == "var/agents/node-a"
    assert agent.bootstrap_token is None
    assert agent.supervisor.worker_host == "127.0.0.1"


def test_the_bootstrap_token_may_come_from_the_environment_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("CLEAVE_BOOTSTRAP_TOKEN", "tok-from-env")
    agent = config()
    assert agent.bootstrap_token == "tok-from-env"
    assert "tok-from-env" not in repr(agent)


def test_tls_advertises_https_and_time_scale_reaches_the_sim_workers():
    agent = config("--tls-cert", "c.pem", "--tls-key", "k.pem", "--listen", "[::1]:9443", "--time-scale", "0.1")
    assert agent.advertise_url == "https://[::1]:9443"
    assert agent.supervisor.time_scale == 0.1


@pytest.mark.parametrize(("argv", "flag"), [
    (["--tier", "Z80"], "--tier"),
    (["--listen", "nowhere"], "--listen"),
    (["--tls-cert", "c.pem"], "--tls-cert"),
    (["--name", "bad name"], "--name"),
])
def test_bad_flags_are_named(argv, flag, capsys):
    with pytest.raises(SystemExit):
        config(*argv)
    assert flag in capsys.readouterr().err
