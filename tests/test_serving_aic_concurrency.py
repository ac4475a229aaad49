"""AIConfigurator end-to-end rows that do not record their concurrency are not fitted.

Source: the ``silicon_data_source`` column of ai-dynamo/aiconfigurator's ``silicon_sample.csv``
(the gap-analysis runs record ``silicon_concurrency``; where several replicas serve, their
``batch_size`` is each replica's maximum batch: GB200 TP 2 rows at concurrency 288 carry
batch_size 144), so a row without ``silicon_concurrency`` has no known concurrency.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from roofline.validation._serving_fit import aiconfigurator_concurrency_known
from tests.conftest import needs_data


def test_a_row_without_silicon_concurrency_is_unknown_whatever_its_batch_size():
    e = pd.DataFrame({"batch_size": [16, 32, 144],
                      "silicon_concurrency": [16.0, np.nan, 288.0]}, index=[3, 4, 5])
    known = aiconfigurator_concurrency_known(e)
    assert list(known.index) == [3, 4, 5]
    assert known.tolist() == [True, False, True]


@needs_data
def test_the_loader_drops_the_seven_rows_without_a_concurrency():
    from roofline.validation._data import resolve_data_dir
    from roofline.validation._serving_fit import load_serving_rows

    e = pd.read_csv(resolve_data_dir(None) / "aiconfigurator" / "e2e_silicon_dense_models.csv")
    unknown = e[~aiconfigurator_concurrency_known(e)]
    # measured 2026-11-29: Qwen3-32B on H100 at 4000/1000, TensorRT-LLM TP 1/2/4/8 and vLLM TP 1/2/8
    assert len(unknown) == 7 and set(unknown["model_path"]) == {"Qwen/Qwen3-32B"}
    assert set(zip(unknown["isl"], unknown["osl"])) == {(4000, 1000)}
    rows = load_serving_rows(keep_duplicates=True)
    aic = rows[(rows["dataset"] == "aiconfigurator") & (rows["model"] == "qwen3-32b")]
    assert not ((aic["isl"] == 4000) & (aic["osl"] == 1000)).any()
