"""A prediction on the compiled static kernel equals the numpy reference to 1e-12, and the default
takes the kernel only when it costs no compilation and no start-up of a single ``roofline predict``."""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys

import numpy as np
import pytest

import roofline
from roofline import static_kernel

# the module (roofline.predict, the attribute, is the function)
predict_module = importlib.import_module("roofline.predict")

pytest.importorskip("numba", reason="numba is not installed: predict runs the numpy reference only")

# every combination: dense, windowed, MoE and MLA models, NVIDIA / AMD / Ascend devices, one device,
# TP, TP x PP and EP, prefetching on and off, the fitted model and the datasheet roofline
CASES = [
    ("llama-3-70b", "h100-sxm", dict(tp=8, batch=4, input_len=4096, output_len=512)),
    ("llama-3-8b", "a100-sxm-80gb", dict(batch=16, input_len=1024, output_len=300)),
    ("gemma-3-27b", "h100-sxm", dict(tp=2, batch=8, input_len=8192, output_len=200)),  # sliding windows
    ("llama-3.1-405b", "b200", dict(tp=8, pp=2, batch=8, input_len=2048, output_len=128, dtype="fp8")),
    ("qwen2-72b", "ascend-910b", dict(tp=8, batch=4, input_len=10923, output_len=5461)),
    ("mixtral-8x7b", "mi300x", dict(tp=2, batch=8, input_len=2048, output_len=256)),
    ("deepseek-v3", "h200-sxm", dict(tp=8, ep=8, batch=8, input_len=2048, output_len=128, dtype="fp8")),
]
TIMES = ("ttft_s", "tpot_s", "e2e_s", "baseline_ttft_s", "baseline_tpot_s", "baseline_e2e_s", "throughput_tok_s")


@pytest.mark.parametrize(("model", "hardware", "kwargs"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("prefetch", [False, True], ids=["prefetch-off", "prefetch-on"])
@pytest.mark.parametrize("datasheet", [False, True], ids=["fitted", "datasheet"])
def test_the_kernel_path_equals_the_numpy_path(model: str, hardware: str, kwargs: dict, prefetch: bool,
                                                datasheet: bool) -> None:
    args = dict(kwargs, prefetch=prefetch, datasheet=datasheet)
    m, hw = roofline.load_model(model), roofline.load_hardware(hardware)
    fast = roofline.predict(m, hw, **args, compiled=True)
    ref = roofline.predict(m, hw, **args, compiled=False)
    for name in TIMES:
        np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), rtol=1e-12, atol=0, err_msg=name)
    assert fast.metrics.keys() == ref.metrics.keys()
    for name, value in ref.metrics.items():
        if isinstance(value, float):
            np.testing.assert_allclose(fast.metrics[name], value, rtol=1e-12, atol=0, equal_nan=True, err_msg=name)
        else:
            assert fast.metrics[name] == value, name
    assert fast.provenance == ref.provenance and fast.memory == ref.memory


def test_a_repeated_prediction_returns_the_same_numbers_from_its_caches() -> None:
    """The kept device, arrays and operator constants give what a fresh process computes."""
    m, hw = roofline.load_model("llama-3-8b"), roofline.load_hardware("h100-sxm")
    first = roofline.predict(m, hw, batch=4, prefetch=True, compiled=True)
    again = roofline.predict(m, hw, batch=4, prefetch=True, compiled=True)
    by_name = roofline.predict("llama-3-8b", "h100-sxm", batch=4, prefetch=True, compiled=True)
    assert first.to_dict() == again.to_dict() == by_name.to_dict()
    other = roofline.predict(m, hw, batch=4, prefetch=True, compiled=True, hbm_bandwidth_GBps=2000)
    assert other.tpot_s != first.tpot_s  # an override is part of the kept arrays' key


def test_one_prediction_in_a_fresh_process_does_not_import_numba() -> None:
    code = ("import sys, roofline; roofline.predict('llama-3-8b', 'h100-sxm'); "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_default_takes_the_kernel_from_the_threshold_on_only_when_it_is_cached(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predict_module, "kernel_loaded", lambda: False)
    for cached in (False, True):
        monkeypatch.setattr(predict_module, "kernel_cached", lambda cached=cached: cached)
        monkeypatch.setattr(predict_module, "_KERNEL_CHECKED", [])
        monkeypatch.setattr(predict_module, "_PREDICTIONS", itertools.count(1))
        took = [predict_module._use_kernel() for _ in range(static_kernel.KERNEL_MIN_CONFIGS + 3)]
        assert took == [False] * (static_kernel.KERNEL_MIN_CONFIGS - 1) + [cached] * 4
    monkeypatch.setattr(predict_module, "kernel_loaded", lambda: True)  # a sweep loaded it
    monkeypatch.setattr(predict_module, "_PREDICTIONS", itertools.count(1))
    assert predict_module._use_kernel()


def test_kernel_cached_reads_numbas_cache_index(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty cache folder means a compilation; an index of both entry points newer than the
    source means none."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not static_kernel.kernel_cached()
    folder = tmp_path / "roofline_0123"
    folder.mkdir()
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    (folder / f"_static_numba.prefill_pass-300.{tag}.nbi").write_bytes(b"")
    assert not static_kernel.kernel_cached()  # one entry point only
    (folder / f"_static_numba.decode_means-320.{tag}.nbi").write_bytes(b"")
    assert static_kernel.kernel_cached()
