"""Interactive reports of a sweep or search folder: one self-contained HTML file.

``write_report(run_dir)`` reads a ``roofline sweep`` folder (``results.parquet``, ``summary.json``)
or a ``roofline optimize`` folder (``trials.parquet``, ``search.json``) and writes
``run_dir/report.html``: plotly.js embedded once, no network needed, under 25 MB whatever the size
of the run (the Pareto front, the top rows, the best row per value of each swept parameter and a
stratified sample are embedded, with the sizes stated). The page has the Pareto front coloured by
prefetching and shaped by device, a filter per swept parameter, performance per cost against each
swept parameter, a sortable table of the best rows, a side-by-side comparison of two rows, the
latency breakdown and memory footprint of a clicked point, and the assumptions behind the numbers.

Modules: ``_run`` (what a run folder holds), ``_select`` (which rows to embed, in batches),
``_details`` (breakdowns and memory with ``roofline.predict``), ``_assumptions`` and ``_build``
(the page: ``report.html``, ``report.css`` and ``report.js`` beside this file). ``_serving``
writes the simpler report of a ``roofline serve`` run (frontier, rows, assumptions).
"""

from __future__ import annotations

from roofline.report._build import MAX_REPORT_BYTES, ReportResult, write_report
from roofline.report._serving import write_serving_report

__all__ = ["MAX_REPORT_BYTES", "ReportResult", "write_report", "write_serving_report"]
