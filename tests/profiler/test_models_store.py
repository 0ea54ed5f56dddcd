"""The model store: monotone versions, atomic writes, metadata, and the activation rule."""

from __future__ import annotations

import json
import threading

import pytest

from profiler.errors import ProfilerError
from profiler.features import WindowProfile
from profiler.models import ModelFormatError, ModelNotFoundError, ModelStore, better_than, train_workload


def window(share: float, start: float) -> WindowProfile:
    return WindowProfile(
        start_s=start, end_s=start + 60.0, request_count=10, arrival_rate_rps=1.0, burstiness_cv=None,
        prompt_tokens_p50=None, prompt_tokens_p90=None, prompt_tokens_p99=None, output_tokens_p50=None,
        output_tokens_p90=None, output_tokens_p99=None, prefix_cache_share=None, prefill_share=share,
        workload_class="decode-heavy", class_mix={}, prefill_gpu_s=share, decode_gpu_s=1.0 - share,
        prefill_share_se=0.01,
    )  # fmt: skip


@pytest.fixture
def doc():
    exported, _ = train_workload([window(0.2 + 0.01 * i, 60.0 * i) for i in range(10)])
    return exported


def test_versions_count_up_and_each_file_holds_its_version(tmp_path, doc):
    store = ModelStore(tmp_path)
    assert [store.save(doc) for _ in range(3)] == ["workload-0001", "workload-0002", "workload-0003"]
    loaded = store.load("workload", "workload-0002")
    assert loaded["version"] == "workload-0002"
    assert loaded["forecaster"] == doc["forecaster"]
    assert (
        json.loads((tmp_path / "workload" / "workload-0003.json").read_text())["version"] == "workload-0003"
    )
    assert store.latest("workload")["version"] == "workload-0003"
    assert store.latest("admission") is None


def test_list_gives_the_metadata_of_each_version(tmp_path, doc):
    store = ModelStore(tmp_path)
    store.save(doc)
    (meta,) = store.list("workload")
    assert meta["version"] == "workload-0001"
    assert meta["trained_on"] == doc["trained_on"]
    assert meta["metrics"] == doc["metrics"]
    assert "saved_at" in meta
    assert "forecaster" not in meta


def test_concurrent_saves_never_share_a_version_nor_leave_temporary_files(tmp_path, doc):
    store = ModelStore(tmp_path)
    versions: list[str] = []
    threads = [threading.Thread(target=lambda: versions.append(store.save(doc))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == [f"workload-{n:04d}" for n in range(1, 9)]
    assert sorted(p.name for p in (tmp_path / "workload").iterdir()) == [
        f"workload-{n:04d}.json" for n in range(1, 9)
    ]


def test_a_malformed_model_is_not_stored(tmp_path, doc):
    store = ModelStore(tmp_path)
    with pytest.raises(ModelFormatError, match="field 'kind' must be one of"):
        store.save({**doc, "kind": "mystery"})
    with pytest.raises(ModelFormatError, match="forecaster"):
        store.save({**doc, "forecaster": None})
    with pytest.raises(ModelFormatError, match="not storable as strict JSON"):
        store.save({**doc, "metrics": {"share_mae": float("nan")}})
    assert store.versions("workload") == []


def test_loading_what_is_not_there_is_a_clear_error(tmp_path, doc):
    store = ModelStore(tmp_path)
    store.save(doc)
    with pytest.raises(ModelNotFoundError, match="no workload model workload-0009; stored: workload-0001"):
        store.load("workload", "workload-0009")
    with pytest.raises(ProfilerError, match="is not a workload model version"):
        store.load("workload", "../../etc/passwd")
    with pytest.raises(ProfilerError, match="unknown model kind 'router'"):
        store.list("router")


def test_a_corrupted_file_is_named(tmp_path, doc):
    store = ModelStore(tmp_path)
    store.save(doc)
    (tmp_path / "workload" / "workload-0001.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match=r"workload-0001\.json: not valid JSON"):
        store.load("workload", "workload-0001")


def metrics(f1: float, digest: str = "abc") -> dict:
    return {"macro_f1": f1, "holdout": {"digest": digest, "rows": 100}}


def test_a_candidate_is_better_only_with_a_higher_macro_f1_on_the_same_hold_out():
    assert better_than(metrics(0.8), metrics(0.7))
    assert not better_than(metrics(0.7), metrics(0.7))
    assert not better_than(metrics(0.71), metrics(0.7), min_gain=0.02)
    assert better_than(metrics(0.5), None)
    with pytest.raises(ProfilerError, match="different hold-outs"):
        better_than(metrics(0.8), metrics(0.7, digest="other"))
    with pytest.raises(ProfilerError, match="no number 'macro_f1'"):
        better_than({"holdout": {}}, metrics(0.7))
