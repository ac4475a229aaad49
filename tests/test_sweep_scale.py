"""Sweeps at scale (issues 20 and 21): the size line printed before a sweep starts, sweeps on a
Dask cluster, and sweeps written as a partitioned Parquet dataset."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from roofline.exceptions import SpecError
from roofline.sweep import measure_budget, run_sweep
from roofline.sweepfile import SweepBudget, sweep_budget, sweep_from_dict

from ._reliability import SMALL_SWEEP
from .conftest import one_line_error


def test_budget_of_a_tiny_sweep_says_under_a_second_and_a_megabyte() -> None:
    line = SweepBudget(points=6, seconds=0.004, disk_bytes=900.0, basis="b").summary()
    assert line == "6 configurations, estimated < 1 s and < 1 MB of disk (b)"


@pytest.mark.parametrize(("seconds", "text"), [(0.99, "< 1 s"), (1.0, "1 s"), (59.0, "59 s"), (90.0, "2 min"),
                                               (7200.0, "2.0 h")])
def test_budget_durations(seconds: float, text: str) -> None:
    assert f"estimated {text} and" in SweepBudget(1, seconds, 2e9).summary()


@pytest.mark.parametrize(("size_bytes", "text"), [(999_999.0, "< 1 MB"), (2.5e6, "2 MB"), (1.6e10, "16.0 GB")])
def test_budget_disk_sizes(size_bytes: float, text: str) -> None:
    assert f"and {text} of disk" in SweepBudget(1, 5.0, size_bytes).summary()


def test_budget_from_given_rates_by_hand() -> None:
    spec = sweep_from_dict(SMALL_SWEEP, "s.yaml")  # 4 L2 x 3 HBM x 2 prefetch = 24 points, 1 combination
    budget = sweep_budget(spec, configs_per_second=8.0, seconds_per_combination=1.0, bytes_per_row=100.0,
                          processes=2, basis="given")
    # (24 points / 8 per s + 1 combination x 1 s) / 2 processes = (3 + 1) / 2 = 2 s; 24 x 100 B = 2,400 B
    assert (budget.points, budget.seconds, budget.disk_bytes) == (24, 2.0, 2400.0)
    assert budget.basis == "given"


def test_measured_budget_names_its_sample_and_rate() -> None:
    spec = sweep_from_dict(SMALL_SWEEP, "s.yaml")
    budget = measure_budget(spec, workers=1)
    assert budget.points == 24
    assert budget.basis.startswith("measured on 24 of its points: ")
    assert "configs/s per process, 1 process, " in budget.basis and budget.basis.endswith(" bytes per row")
    assert math.isfinite(budget.seconds) and budget.seconds > 0
    assert 10 < budget.disk_bytes / 24 < 10_000  # Parquet of 39 columns: tens to hundreds of bytes per row


# ---- Dask ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """A two-worker Dask cluster in this process, talking TCP on the loopback (so every task and
    table is serialised as it would be between machines); yields the scheduler's address."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _tables_equal(a: Path, b: Path) -> None:
    import pyarrow.parquet as pq

    left, right = pq.read_table(a), pq.read_table(b)
    assert left.num_rows == right.num_rows > 0
    assert left.equals(right), "cluster and local results differ"


def test_cluster_sweep_writes_the_same_files_as_a_local_one(dask_scheduler: str, tmp_path: Path) -> None:
    spec = sweep_from_dict({**SMALL_SWEEP, "hardware": ["h100-sxm", "a100-sxm-80gb"]}, "s.yaml")
    local = run_sweep(spec, tmp_path / "local", workers=1, chunk_size=5, csv=True)
    remote = run_sweep(spec, tmp_path / "remote", chunk_size=5, csv=True, scheduler=dask_scheduler)
    assert (remote.rows, remote.feasible) == (local.rows, local.feasible) == (48, local.feasible)
    _tables_equal(tmp_path / "local" / "results.parquet", tmp_path / "remote" / "results.parquet")
    _tables_equal(tmp_path / "local" / "pareto.parquet", tmp_path / "remote" / "pareto.parquet")
    assert (tmp_path / "local" / "results.csv").read_text() == (tmp_path / "remote" / "results.csv").read_text()
    assert remote.best == local.best
    manifest = json.loads((tmp_path / "remote" / ".roofline-run.json").read_text())
    assert manifest["stage"] == "done" and not (tmp_path / "remote" / ".parts").exists()


def test_cluster_sweep_resumes_an_interrupted_local_run(dask_scheduler: str, tmp_path: Path) -> None:
    spec = sweep_from_dict(SMALL_SWEEP, "s.yaml")
    out = tmp_path / "out"

    def interrupt_after_two_parts(done: int, total: int) -> None:
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after two parts of 5 rows: they are kept
        run_sweep(spec, out, workers=1, chunk_size=5, progress=interrupt_after_two_parts)
    kept = {p.name: p.stat().st_mtime_ns for p in (out / ".parts").iterdir()}
    assert len(kept) == 2
    seen: list[int] = []
    run_sweep(spec, out, resume=True, chunk_size=5, scheduler=dask_scheduler,
              progress=lambda done, total: seen.append(done))
    assert seen[0] == 10  # the two kept parts of 5 rows were not evaluated again
    reference = run_sweep(spec, tmp_path / "ref", workers=1, chunk_size=5)
    _tables_equal(reference.out_dir / "results.parquet", out / "results.parquet")


def test_bad_scheduler_address_is_one_line_and_leaves_nothing(cli, tmp_path: Path, monkeypatch) -> None:
    import roofline._cluster

    monkeypatch.setattr(roofline._cluster, "CONNECT_TIMEOUT_S", 1.0)
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(SMALL_SWEEP))
    for address, why in (("tcp://127.0.0.1:1", "no Dask scheduler answered within 1 s"),
                         ("localhost:8786", "expected an address such as tcp://HOST:8786"),
                         ("tcp://127.0.0.1:port", "expected an address such as tcp://HOST:8786"),
                         ("udp://127.0.0.1:8786", "schemes: tcp, tls, ws, wss, ucx")):
        one_line_error(cli("sweep", str(sweep), "--out", str(tmp_path / "out"), "--no-plots",
                           "--scheduler", address), why)
        assert not (tmp_path / "out").exists()
    one_line_error(cli("sweep", str(sweep), "--out", str(tmp_path / "out"), "--workers", "2",
                       "--scheduler", "tcp://127.0.0.1:1"), "--workers does not apply with --scheduler")


# ---- Parquet dataset -------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])  # the workers summarize their parts (2: in other processes)
def test_dataset_sweep_holds_the_rows_best_and_front_of_a_merged_one(tmp_path: Path, workers: int) -> None:
    import pyarrow.parquet as pq

    spec = sweep_from_dict({**SMALL_SWEEP, "hardware": ["h100-sxm", "a100-sxm-80gb"]}, "s.yaml")
    merged = run_sweep(spec, tmp_path / "merged", workers=1, chunk_size=5)
    dataset = run_sweep(spec, tmp_path / "dataset", workers=workers, chunk_size=5, output="parquet-dataset")
    folder = tmp_path / "dataset" / "results"
    assert sorted(p.name for p in folder.iterdir())[:2] == ["part-0000-000000000000.parquet",
                                                           "part-0000-000000000005.parquet"]
    assert len(list(folder.iterdir())) == 2 * 5  # 24 rows in chunks of 5, for each of 2 devices
    assert pq.read_table(folder).equals(pq.read_table(tmp_path / "merged" / "results.parquet"))
    _tables_equal(tmp_path / "merged" / "pareto.parquet", tmp_path / "dataset" / "pareto.parquet")
    assert (dataset.rows, dataset.feasible, dataset.best, dataset.pareto) == \
        (merged.rows, merged.feasible, merged.best, merged.pareto)
    assert dataset.files[0] == folder and not (tmp_path / "dataset" / "results.parquet").exists()
    summary = json.loads((tmp_path / "dataset" / "summary.json").read_text())
    assert summary["rows"] == 48 and summary["best"] == merged.best


def test_arrow_table_builds_one_valued_text_columns_as_pyarrow_does() -> None:
    import numpy as np
    import pyarrow as pa

    from roofline._dataset import arrow_table

    columns = {"model": np.full(5, "llama-3-70b"), "bound": np.array(["memory", "comm", "memory", "x", "é"]),
               "empty": np.full(5, ""), "speed": np.arange(5.0), "ok": np.ones(5, bool),
               "none": np.array([], dtype="<U3")}
    for name, values in columns.items():
        table = arrow_table({name: values})
        assert table.equals(pa.table({name: values})), name
        assert table.schema.field(name).type == pa.table({name: values}).schema.field(name).type


def test_scan_of_parts_ranks_ties_and_nan_as_a_stable_sort_of_the_merged_table(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from roofline._dataset import scan_parts
    from roofline.pareto import pareto_mask

    rng = np.random.default_rng(7)
    files, tables = [], []
    for part in range(6):
        n = 40
        cost = rng.integers(1, 6, n).astype(float)  # few distinct values: many ties
        speed = rng.integers(1, 6, n).astype(float)
        speed[rng.random(n) < 0.1] = np.nan
        table = pa.table({"id": np.arange(n) + 100 * part, "cost": cost, "speed": speed,
                          "feasible": rng.random(n) < 0.7})
        files.append(tmp_path / f"part-{part}.parquet")
        pq.write_table(table, files[-1])
        tables.append(table)
    feasible, best, front = scan_parts(files, metric="speed", maximize=True,
                                       pareto=[("cost", False), ("speed", True)], top=7)
    whole = pa.concat_tables(tables)
    good = whole.filter(whole.column("feasible"))
    assert feasible == good.num_rows
    assert best.column("id").to_pylist() == good.sort_by([("speed", "descending")]).slice(0, 7).column("id").to_pylist()
    values = np.column_stack([np.asarray(good.column("cost")), np.asarray(good.column("speed"))])
    expected = good.filter(pa.array(pareto_mask(values, [False, True])))
    assert front.column("id").to_pylist() == expected.column("id").to_pylist()


def test_summaries_merged_as_they_arrive_equal_the_scan_and_keep_only_the_winning_parts(tmp_path: Path) -> None:
    """Workers finish parts out of order: folding their summaries (with the full rows they kept) in
    any order gives the in-order scan's result, and the merge holds the kept rows of only the
    parts that still have a best or front row (the main process of a 100M sweep stays small)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from roofline._dataset import SummaryMerge, scan_parts, summarize_part

    rng = np.random.default_rng(11)
    files, summaries = [], {}
    pareto = [("cost", False), ("speed", True)]
    for part in range(30):
        n = 50
        table = pa.table({"id": np.arange(n) + 100 * part, "cost": rng.integers(1, 40, n).astype(float),
                          "speed": rng.integers(1, 40, n).astype(float), "feasible": rng.random(n) < 0.8})
        files.append(tmp_path / f"part-{part:02d}.parquet")
        pq.write_table(table, files[-1])
        columns = {name: table.column(name).to_numpy() for name in table.column_names}
        summaries[files[-1]] = summarize_part(columns, metric="speed", maximize=True, pareto=pareto, top=5, table=table)
    expected = scan_parts(files, metric="speed", maximize=True, pareto=pareto, top=5)
    for seed in range(3):
        merge = SummaryMerge(files, metric="speed", maximize=True, pareto=pareto, top=5)
        order = np.random.default_rng(seed).permutation(len(files))
        for i in order[:-4]:  # the last four come from an earlier run: read back from their files
            merge.add(files[i], summaries[files[i]])
        winners = {int(p) for p in (*merge._best.keys[:, 1], *merge._front.where[:, 0])}
        assert {files.index(p) for p in merge._kept} <= winners
        feasible, best, front = merge.finish()
        assert feasible == expected[0]
        assert best.equals(expected[1]) and front.equals(expected[2])


def test_dataset_sweep_resumes_and_force_removes_its_folder(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    spec = sweep_from_dict(SMALL_SWEEP, "s.yaml")
    out = tmp_path / "out"

    def interrupt(done: int, total: int) -> None:
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, workers=1, chunk_size=5, output="parquet-dataset", progress=interrupt)
    assert len(list((out / "results").glob("part-*.parquet"))) == 2 and not (out / "summary.json").exists()
    with pytest.raises(SpecError, match=r"output format differs \(parquet-dataset in the earlier run, parquet now\)"):
        run_sweep(spec, out, workers=1, chunk_size=5, resume=True)
    seen: list[int] = []
    resumed = run_sweep(spec, out, workers=1, chunk_size=5, output="parquet-dataset", resume=True,
                        progress=lambda done, total: seen.append(done))
    assert seen[0] == 10 and pq.read_table(out / "results").num_rows == 24
    # the summary merges the earlier run's parts (read back) with this run's (summarized as written)
    whole = run_sweep(spec, tmp_path / "whole", workers=1, chunk_size=5, output="parquet-dataset")
    assert (resumed.feasible, resumed.best, resumed.pareto) == (whole.feasible, whole.best, whole.pareto)
    run_sweep(spec, out, workers=1, chunk_size=5, force=True)  # a merged sweep replaces it
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["pareto.parquet", "results.csv", "results.parquet", "summary.json"]


def test_dataset_format_options_on_the_command_line(cli, tmp_path: Path) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(SMALL_SWEEP))
    out = tmp_path / "out"
    one_line_error(cli("sweep", str(sweep), "--out", str(out), "--format", "parquet-dataset", "--csv"),
                   "--csv does not apply to --format parquet-dataset")
    code, _, err = cli("sweep", str(sweep), "--out", str(out), "--format", "feather")
    assert code == 2 and "feather" in err and not out.exists()
    code, stdout, err = cli("sweep", str(sweep), "--out", str(out), "--format", "parquet-dataset", "--workers", "1",
                            "--chunk-size", "10", "--no-plots")  # plots read a sample of results/ (checked by hand)
    assert code == 0, err
    assert f"wrote {out / 'results'}, {out / 'pareto.parquet'}, {out / 'summary.json'}" in stdout


def test_sample_rows_of_a_dataset_is_bounded_and_uniform(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from roofline._dataset import sample_rows

    for part in range(4):
        pq.write_table(pa.table({"x": np.arange(part * 50_000, (part + 1) * 50_000)}), tmp_path / f"p{part}.parquet")
    assert sample_rows(tmp_path, 10**6).num_rows == 200_000  # all of them
    sample = np.asarray(sample_rows(tmp_path, 20_000).column("x"))
    # binomial(200,000, 0.1): mean 20,000, sd 134; each quarter gets a quarter of it (sd 67)
    assert abs(len(sample) - 20_000) < 700
    assert all(abs(np.sum((sample >= q * 50_000) & (sample < (q + 1) * 50_000)) - 5_000) < 350 for q in range(4))


def test_report_of_a_dataset_sweep_embeds_what_a_merged_one_does(tmp_path: Path) -> None:
    from roofline.report import write_report

    spec = sweep_from_dict(SMALL_SWEEP, "s.yaml")
    run_sweep(spec, tmp_path / "merged", workers=1, chunk_size=5)
    run_sweep(spec, tmp_path / "dataset", workers=1, chunk_size=5, output="parquet-dataset")
    merged = write_report(tmp_path / "merged", details=4)
    dataset = write_report(tmp_path / "dataset", details=4)
    assert (dataset.total_rows, dataset.embedded_rows, dataset.counts) == \
        (merged.total_rows, merged.embedded_rows, merged.counts) == (24, 24, merged.counts)


# ---- serve --report --------------------------------------------------------------------------
def test_serve_report_is_written_next_to_the_plot_and_never_overwritten(cli, tmp_path: Path, monkeypatch) -> None:
    args = ["serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "1,8", "--report"]
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(*args)
    assert code == 0, err
    page = (tmp_path / "report.html").read_text()
    assert "llama-3-8b on 1x h100-sxm (vllm)" in page and page.count("<tr>") == 1 + 2  # header, 2 loads
    assert "plotly" in page and 'id="frontier"' in page and "<h2>Assumptions</h2>" in page
    one_line_error(cli(*args), "report.html exists; pass --force")
    assert cli(*args, "--force")[0] == 0
    (tmp_path / "plots").mkdir()
    code, _, err = cli(*args, "--plot", str(tmp_path / "plots" / "frontier"))
    assert code == 0, err
    assert (tmp_path / "plots" / "report.html").exists()


def test_budget_of_a_billion_point_axis_is_counted_not_materialised() -> None:
    import tracemalloc

    spec = sweep_from_dict({**SMALL_SWEEP, "sweep": {"l2_capacity_MiB": {"low": 0, "high": 1e7, "step": 0.01}}},
                           "s.yaml")
    tracemalloc.start()
    budget = measure_budget(spec)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert budget.points == 1_000_000_001 and budget.basis == "planning figures, not measured"
    assert peak < 50 * 2**20  # bytes: not the 8 GB of the axis
