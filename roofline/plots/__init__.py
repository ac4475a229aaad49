"""Report figures: Pareto fronts, metric-against-parameter curves, latency breakdowns, roofline
charts and prefetch-speedup scatters, written as HTML (always) and PNG (when a Chrome is found).

Compute first, then render: every ``plot_*`` function is a thin wrapper around a ``_get_*_info``
function that returns plain numpy arrays and lists (tested on their own), and only the wrapper
touches plotly. plotly and kaleido are imported inside the functions, so ``import roofline.plots``
stays cheap (a test checks that it imports neither).

Writing figures::

    from roofline.plots import FigureWriter, plot_latency_breakdown

    p = roofline.predict("llama-3-70b", "h100-sxm", tp=8, batch=4, input_len=4096, output_len=512)
    with FigureWriter() as out:      # one warm Chrome for every figure of the run
        out.write(plot_latency_breakdown(p.breakdown), Path("report/breakdown"))

PNG export goes through kaleido (>= 1.0), which drives a Chrome or Chromium (:func:`find_browser`
says which); when none is found, or the export fails, the HTML is still written and a one-line
:class:`PNGExportWarning` says how to enable PNG.

One private module per figure (import everything from ``roofline.plots``): ``_writer`` (HTML and
image files, kaleido), ``_pareto``, ``_metric`` (a metric against a swept parameter),
``_breakdown`` (latency breakdowns), ``_roofline``, ``_speedup`` (prefetch speedup against the
collective / prefetch ratio), and ``_common`` (colors, one colour per series label for every figure and the report, axis labels,
helpers of the info functions).
"""

from __future__ import annotations

from roofline.plots._breakdown import (
    BreakdownInfo,
    plot_breakdown_comparison,
    plot_latency_breakdown,
)
from roofline.plots._breakdown import (
    _get_breakdown_comparison_info as _get_breakdown_comparison_info,
)
from roofline.plots._breakdown import (
    _get_latency_breakdown_info as _get_latency_breakdown_info,
)
from roofline.plots._common import (
    BOUND_COLORS,
    EXTRA_METRICS,
    KIND_COLORS,
    KIND_LABELS,
    KIND_ORDER,
    LABELS,
    PALETTE,
    PREFETCH_COLORS,
    SERIES_COLORS,
    TEMPLATE,
    axis_label,
    scenario_label,
    series_colors,
)
from roofline.plots._metric import (
    MetricCurve,
    MetricVsParameterInfo,
    plot_metric_vs_parameter,
)
from roofline.plots._metric import (
    _get_metric_vs_parameter_info as _get_metric_vs_parameter_info,
)
from roofline.plots._pareto import (
    ParetoFrontInfo,
    pareto_mask_2d,
    plot_pareto_front,
)
from roofline.plots._pareto import (
    _get_pareto_front_info as _get_pareto_front_info,
)
from roofline.plots._roofline import PlacedLabel, RooflineInfo, plot_roofline
from roofline.plots._roofline import _get_roofline_info as _get_roofline_info
from roofline.plots._serving import ServingFrontierInfo, plot_serving_frontier
from roofline.plots._speedup import SpeedupVsRatioInfo, plot_speedup_vs_ratio
from roofline.plots._speedup import _get_speedup_vs_ratio_info as _get_speedup_vs_ratio_info
from roofline.plots._writer import (
    DEBIAN_HEADLESS_SHELL,
    ENABLE_PNG_HINT,
    IMAGE_FORMATS,
    FigureWriter,
    PNGExportWarning,
    figure_targets,
    find_browser,
    save_figure,
)
from roofline.plots._writer import (
    _browser_lookup as _browser_lookup,
)

__all__ = [
    "FigureWriter",
    "PNGExportWarning",
    "figure_targets",
    "find_browser",
    "save_figure",
    "plot_pareto_front",
    "plot_metric_vs_parameter",
    "plot_latency_breakdown",
    "plot_breakdown_comparison",
    "plot_roofline",
    "plot_speedup_vs_ratio",
    "plot_serving_frontier",
    "ServingFrontierInfo",
    "pareto_mask_2d",
    "axis_label",
    "scenario_label",
    "series_colors",
    # constants and the info tuples of the plot_* functions
    "BOUND_COLORS",
    "DEBIAN_HEADLESS_SHELL",
    "ENABLE_PNG_HINT",
    "EXTRA_METRICS",
    "IMAGE_FORMATS",
    "KIND_COLORS",
    "KIND_LABELS",
    "KIND_ORDER",
    "LABELS",
    "PALETTE",
    "PREFETCH_COLORS",
    "SERIES_COLORS",
    "TEMPLATE",
    "BreakdownInfo",
    "MetricCurve",
    "MetricVsParameterInfo",
    "ParetoFrontInfo",
    "PlacedLabel",
    "RooflineInfo",
    "SpeedupVsRatioInfo",
]
