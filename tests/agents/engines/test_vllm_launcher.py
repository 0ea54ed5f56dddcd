"""``vllm serve`` command lines and environments per role (never run here: no GPU, no weights)."""

from __future__ import annotations

import json

import pytest

from agents.engines import EngineError, WorkerSpec, launcher


def spec(role: str, **overrides: object) -> WorkerSpec:
    fields: dict[str, object] = {
        "name": f"{role}-0",
        "role": role,
        "engine": "vllm",
        "model": "llama-3.1-70b",
        "tp": 4,
        "gpu_ids": (4, 5, 6, 7),
        "port": 8200,
        "tier": "H100-SXM-80GB",
    }
    return WorkerSpec(**{**fields, **overrides})  # type: ignore[arg-type]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_a_prefill_worker_is_a_nixl_kv_producer() -> None:
    argv = launcher("vllm").command(spec("prefill"), host="10.0.0.7")
    assert argv[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-70B-Instruct"]
    assert flag(argv, "--served-model-name") == "llama-3.1-70b"
    assert flag(argv, "--host") == "10.0.0.7"
    assert flag(argv, "--port") == "8200"
    assert flag(argv, "--tensor-parallel-size") == "4"
    assert flag(argv, "--dtype") == "bfloat16"
    assert flag(argv, "--gpu-memory-utilization") == "0.9"
    assert flag(argv, "--max-num-seqs") == "256"
    assert flag(argv, "--max-num-batched-tokens") == "8192"
    assert json.loads(flag(argv, "--kv-transfer-config")) == {
        "kv_connector": "NixlConnector",
        "kv_role": "kv_producer",
    }


def test_a_decode_worker_is_a_kv_consumer_and_a_colocated_one_has_no_connector() -> None:
    decode = launcher("vllm").command(spec("decode"))
    assert json.loads(flag(decode, "--kv-transfer-config"))["kv_role"] == "kv_consumer"
    assert "--kv-transfer-config" not in launcher("vllm").command(spec("colocated"))


def test_each_disaggregated_worker_gets_its_own_nixl_side_channel() -> None:
    vllm = launcher("vllm")
    env = vllm.environment(spec("prefill"), {"PATH": "/usr/bin"}, host="10.0.0.7")
    assert env["PATH"] == "/usr/bin"
    assert env["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    # 5600 + 16 x the lowest GPU: TP ranks take base + rank, so neighbours never collide.
    assert env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == str(5600 + 16 * 4)
    assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == "10.0.0.7"
    other = vllm.environment(spec("decode", gpu_ids=(0, 1, 2, 3)), {}, host="0.0.0.0")
    assert other["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "5600"
    assert "VLLM_NIXL_SIDE_CHANNEL_HOST" not in other  # a wildcard is no address to advertise
    colocated = vllm.environment(spec("colocated"), {})
    assert "VLLM_NIXL_SIDE_CHANNEL_PORT" not in colocated


def test_engine_args_override_defaults_and_the_rest_become_flags() -> None:
    args = {
        "hf_model": "/models/llama-70b",
        "kv_role": "kv_both",
        "max_num_seqs": 128,
        "max_model_len": 16384,
        "enforce_eager": True,
        "enable_prefix_caching": False,
        "nixl_side_channel_port": 7000,
        "nixl_side_channel_host": "node-3.internal",
        "time_scale": 0.1,  # the sim's alone: never a vllm flag
        "kv_link": "infiniband",
    }
    vllm = launcher("vllm")
    argv = vllm.command(spec("prefill", engine_args=args))
    assert argv[2] == "/models/llama-70b"
    assert json.loads(flag(argv, "--kv-transfer-config"))["kv_role"] == "kv_both"
    assert flag(argv, "--max-num-seqs") == "128"
    assert flag(argv, "--max-model-len") == "16384"
    assert "--enforce-eager" in argv
    assert "--enable-prefix-caching" not in argv
    assert not any(arg in argv for arg in ("--time-scale", "--kv-link", "--hf-model", "--kv-role"))
    env = vllm.environment(spec("prefill", engine_args=args), {}, host="10.0.0.7")
    assert env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "7000"
    assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == "node-3.internal"


def test_fp8_quantizes_weights_and_kv_cache() -> None:
    argv = launcher("vllm").command(spec("decode", dtype="fp8"))
    assert flag(argv, "--quantization") == "fp8"
    assert flag(argv, "--kv-cache-dtype") == "fp8"


def test_a_model_without_a_known_repo_needs_hf_model() -> None:
    with pytest.raises(EngineError, match=r"set engine_args\['hf_model'\]"):
        launcher("vllm").command(spec("decode", model="my-model"))
    argv = launcher("vllm").command(
        spec("decode", model="my-model", engine_args={"hf_model": "org/my-model"})
    )
    assert argv[2] == "org/my-model"


def test_the_same_spec_always_gives_the_same_argv() -> None:
    args = {"b_flag": 1, "a_flag": 2}
    assert launcher("vllm").command(spec("decode", engine_args=args)) == launcher("vllm").command(
        spec("decode", engine_args=dict(reversed(args.items())))
    )
