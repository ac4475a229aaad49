"""`roofline serve --prefetch-weights` and `roofline.serve(prefetch_weights=...)`: PRESERVE
prefetching is a scenario option, off by default, as in `predict`."""

from __future__ import annotations

import json

import pytest

from roofline.exceptions import SpecError
from roofline.serving import serve
from tests.conftest import one_line_error

KW = {"tp": 2, "input_len": 128, "output_len": 32, "concurrency": [1, 4, 32]}
SERVE = ("serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--tp", "2", "--input", "128", "--output", "32",
         "--concurrency", "1,4,32", "--json")


def _rows(**kwargs: object) -> list[dict]:
    return serve("llama-3-8b", "h100-sxm", **KW, **kwargs).rows  # type: ignore[arg-type]


def test_prefetch_switches_off_leave_the_output_unchanged() -> None:
    """Without --prefetch the block switches change nothing (bit for bit)."""
    today = _rows()
    assert _rows(prefetch=False, prefetch_weights=True) == today
    assert _rows(prefetch=False, prefetch_weights=False) == today
    assert _rows(prefetch=False, prefetch_kv=False) == today
    # prefetching nothing is prefetching off
    assert _rows(prefetch=True, prefetch_weights=False) == today


def test_prefetching_weights_is_never_slower_and_helps_decode_here() -> None:
    off, on = _rows(), _rows(prefetch=True, prefetch_weights=True)
    assert on == _rows(prefetch=True)  # weights are prefetched by default, as in predict
    for a, b in zip(off, on):
        for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            assert b[key] <= a[key] * (1 + 1e-12), key
        assert b["throughput_tok_s"] >= a["throughput_tok_s"] * (1 - 1e-12)
    # llama-3-8b at TP 2 on an H100 (50 MB of L2): a decode step is mostly weight reads, part of
    # which PRESERVE fetches into L2 during the all-reduces: TPOT drops by 0.5-1.5 % at c = 1
    assert 0.985 < on[0]["tpot_ms"] / off[0]["tpot_ms"] < 0.995


def test_the_cli_passes_the_prefetch_switches(cli) -> None:
    code, out, err = cli(*SERVE, "--prefetch", "--no-prefetch-weights")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["rows"] == json.loads(json.dumps(_rows()))
    assert doc["summary"]["prefetch"] == {"enabled": True, "weights": False, "kv_cache": False}


def test_kv_prefetching_is_refused_not_ignored(cli) -> None:
    """The serving step's attention reads the KV cache from HBM: asking to prefetch it is an error."""
    one_line_error(cli(*SERVE, "--prefetch", "--prefetch-kv"), "--prefetch-kv: not modelled by serve")
    with pytest.raises(SpecError, match="--prefetch-kv"):
        _rows(prefetch=True, prefetch_kv=True)


@pytest.mark.parametrize("option", ["--prefetch-weights", "--no-prefetch-kv"])
def test_prefetch_switches_are_refused_with_disaggregated_pools(cli, option: str) -> None:
    one_line_error(cli(*SERVE, "--prefill", "tp=1", "--decode", "tp=1", option),
                   f"{option.replace('--no-', '--')}: not supported with disaggregated pools")
