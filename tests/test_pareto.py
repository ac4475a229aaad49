"""One Pareto implementation: sweeps, reports and plots agree, NaN and infinity included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline.pareto import pareto_mask
from roofline.plots import pareto_mask_2d

# few distinct values, so that ties and duplicates are common; NaN (an unknown cost) and infinity
VALUES = st.sampled_from([0.0, 1.0, 2.0, 3.0, np.nan, np.inf, -np.inf])


def _brute(v: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """Definition: a finite row is on the front when no finite row is >= in all and > in one."""
    c = np.where(maximize, -v, v)
    finite = np.isfinite(c).all(axis=1)
    out = np.zeros(len(v), dtype=bool)
    for i in np.flatnonzero(finite):
        others = c[finite]
        dominated = ((others <= c[i]).all(axis=1) & (others < c[i]).any(axis=1)).any()
        out[i] = not dominated
    return out


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3).flatmap(lambda k: st.tuples(
    st.lists(st.lists(VALUES, min_size=k, max_size=k), min_size=1, max_size=30),
    st.lists(st.booleans(), min_size=k, max_size=k))))
def test_pareto_mask_is_the_definition(case: tuple[list[list[float]], list[bool]]) -> None:
    rows, maximize = case
    if len(maximize) == 1:
        maximize = [maximize[0], not maximize[0]]
        rows = [r + [0.0] for r in rows]
    v = np.array(rows, dtype=float)
    np.testing.assert_array_equal(pareto_mask(v, maximize), _brute(v, maximize))
    if v.shape[1] == 2:  # the plot's front is the same function
        better = ["max" if m else "min" for m in maximize]
        np.testing.assert_array_equal(pareto_mask_2d(v[:, 0], v[:, 1], x_better=better[0], y_better=better[1]),
                                      pareto_mask(v, maximize))


def test_non_finite_rows_are_never_on_the_front() -> None:
    # cost, throughput: the NaN-cost row would dominate nothing, the -inf cost row everything
    v = np.array([[100.0, 10.0], [np.nan, 50.0], [-np.inf, 5.0], [200.0, 20.0]])
    assert pareto_mask(v, [False, True]).tolist() == [True, False, False, True]
    assert pareto_mask_2d(v[:, 0], v[:, 1]).tolist() == [True, False, False, True]


def test_the_plot_takes_the_directions_from_the_metric_registry() -> None:
    import pandas as pd

    from roofline.plots._pareto import _get_pareto_front_info

    # throughput (max) on x, TPOT (min) on y: (10, 5) and (20, 8) trade off; (5, 9) is dominated
    df = pd.DataFrame({"throughput_tok_s": [10.0, 20.0, 5.0], "tpot_ms": [5.0, 8.0, 9.0]})
    info = _get_pareto_front_info(df, "throughput_tok_s", "tpot_ms")
    assert info.on_front.tolist() == [True, True, False]
    # unregistered columns: x minimized, y maximized, as before
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, 2.0]})
    assert _get_pareto_front_info(df, "a", "b").on_front.tolist() == [True, True]
