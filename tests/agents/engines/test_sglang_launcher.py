"""``sglang.launch_server`` command lines per role (never run here)."""

from __future__ import annotations

import pytest

from agents.engines import EngineError, WorkerSpec, launcher


def spec(role: str, **overrides: object) -> WorkerSpec:
    fields: dict[str, object] = {
        "name": f"{role}-0",
        "role": role,
        "engine": "sglang",
        "model": "qwen2.5-32b",
        "tp": 2,
        "gpu_ids": (2, 3),
        "port": 30000,
        "tier": "H100-SXM-80GB",
    }
    return WorkerSpec(**{**fields, **overrides})  # type: ignore[arg-type]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_a_colocated_worker_serves_plainly_with_metrics_on() -> None:
    argv = launcher("sglang").command(spec("colocated"), host="0.0.0.0")
    assert argv[:3] == ["python3", "-m", "sglang.launch_server"]
    assert flag(argv, "--model-path") == "Qwen/Qwen2.5-32B-Instruct"
    assert flag(argv, "--served-model-name") == "qwen2.5-32b"
    assert flag(argv, "--host") == "0.0.0.0"
    assert flag(argv, "--port") == "30000"
    assert flag(argv, "--tp-size") == "2"
    assert flag(argv, "--max-running-requests") == "256"
    assert flag(argv, "--chunked-prefill-size") == "8192"
    assert "--enable-metrics" in argv
    assert "--disaggregation-mode" not in argv


def test_a_prefill_worker_disaggregates_over_mooncake_with_its_own_bootstrap_port() -> None:
    argv = launcher("sglang").command(spec("prefill"))
    assert flag(argv, "--disaggregation-mode") == "prefill"
    assert flag(argv, "--disaggregation-transfer-backend") == "mooncake"
    assert flag(argv, "--disaggregation-bootstrap-port") == str(8998 + 16 * 2)


def test_a_decode_worker_disaggregates_over_nixl_when_asked() -> None:
    argv = launcher("sglang").command(spec("decode", engine_args={"transfer_backend": "nixl"}))
    assert flag(argv, "--disaggregation-mode") == "decode"
    assert flag(argv, "--disaggregation-transfer-backend") == "nixl"
    assert "--disaggregation-bootstrap-port" not in argv


def test_an_unknown_transfer_backend_is_refused() -> None:
    with pytest.raises(EngineError, match="unknown transfer_backend 'carrier-pigeon'"):
        launcher("sglang").command(spec("decode", engine_args={"transfer_backend": "carrier-pigeon"}))


def test_engine_args_map_onto_sglangs_flags() -> None:
    args = {"python": "/opt/sglang/bin/python", "max_num_seqs": 64, "gpu_memory_utilization": 0.85,
            "kv_link": "nvlink", "context_length": 8192}  # fmt: skip
    argv = launcher("sglang").command(spec("colocated", dtype="fp8", engine_args=args))
    assert argv[0] == "/opt/sglang/bin/python"
    assert flag(argv, "--max-running-requests") == "64"
    assert flag(argv, "--mem-fraction-static") == "0.85"
    assert flag(argv, "--quantization") == "fp8"
    assert flag(argv, "--context-length") == "8192"
    assert "--kv-link" not in argv


def test_its_environment_pins_the_workers_gpus() -> None:
    env = launcher("sglang").environment(spec("decode"), {"HOME": "/root"})
    assert env == {"HOME": "/root", "CUDA_VISIBLE_DEVICES": "2,3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
