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

PNG export goes through kaleido (>= 1.0), which drives a Chrome or Chromium. The browser is the one
named by the ``BROWSER_PATH`` environment variable when it is set; otherwise the one kaleido's
``choreographer`` finds (a copy fetched by ``plotly_get_chrome``, or ``chromium`` / ``google-chrome``
on ``PATH``); otherwise Debian's ``/usr/lib/chromium/chromium-headless-shell``
(``apt-get install -y --no-install-recommends chromium-headless-shell``, works offline). When none
is found, or the export fails, the HTML is still written and a one-line :class:`PNGExportWarning`
says how to enable PNG.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = [
    "FigureWriter",
    "PNGExportWarning",
    "find_browser",
    "save_figure",
    "plot_pareto_front",
    "plot_metric_vs_parameter",
    "plot_latency_breakdown",
    "plot_breakdown_comparison",
    "plot_roofline",
    "plot_speedup_vs_ratio",
    "pareto_mask_2d",
    "axis_label",
]

#: Where Debian's ``chromium-headless-shell`` package puts the browser (the /usr/bin entry is a
#: shell wrapper; kaleido talks to the browser over inherited pipes, so use the real binary).
DEBIAN_HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"

ENABLE_PNG_HINT = (
    "to enable PNG install a Chrome: on Debian/Ubuntu `apt-get install -y --no-install-recommends "
    f"chromium-headless-shell` and set BROWSER_PATH={DEBIAN_HEADLESS_SHELL}; elsewhere run "
    "`plotly_get_chrome`"
)

#: Image formats kaleido writes (HTML is always written as well).
IMAGE_FORMATS = ("png", "svg", "pdf", "jpeg", "webp")

TEMPLATE = "plotly_white"

#: Operator kinds in the order they stack (bottom first), with a fixed color each, so that every
#: breakdown figure of a report uses the same colors.
KIND_ORDER = ("gemm", "attention", "vector", "embedding", "collective", "p2p")
KIND_COLORS = {
    "gemm": "#1f77b4", "attention": "#ff7f0e", "vector": "#2ca02c", "embedding": "#9467bd",
    "collective": "#d62728", "p2p": "#8c564b",
}
BOUND_COLORS = {"compute": "#1f77b4", "memory": "#ff7f0e", "comm": "#d62728"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")

#: Axis titles with units for the columns sweeps produce; other names fall back to their unit suffix.
LABELS = {
    "ttft_ms": "TTFT (ms)",
    "tpot_ms": "TPOT (ms per token)",
    "e2e_ms": "end-to-end latency (ms)",
    "throughput_tok_s": "throughput (tokens/s)",
    "baseline_ttft_ms": "TTFT without prefetch (ms)",
    "baseline_tpot_ms": "TPOT without prefetch (ms per token)",
    "baseline_e2e_ms": "end-to-end latency without prefetch (ms)",
    "baseline_throughput_tok_s": "throughput without prefetch (tokens/s)",
    "prefetch_speedup": "prefetch speedup (baseline e2e / e2e, x)",
    "memory_GiB": "memory per device (GiB)",
    "device_cost_usd": "device cost (USD)",
    "system_cost_usd": "system cost (USD)",
    "tok_s_per_kusd": "performance per cost (tokens/s per 1000 USD)",
    "baseline_tok_s_per_kusd": "performance per cost without prefetch (tokens/s per 1000 USD)",
    "collective_to_prefetch_ratio": "collective time / prefetch time (ratio)",
    "l2_capacity_MiB": "L2 capacity (MiB)",
    "hbm_bandwidth_GBps": "HBM bandwidth (GB/s)",
    "hbm_capacity_GiB": "HBM capacity (GiB)",
    "l2_bandwidth_GBps": "L2 bandwidth (GB/s)",
    "link_bandwidth_GBps": "link bandwidth (GB/s per link, one direction)",
    "inter_node_bandwidth_GBps": "inter-node bandwidth (GB/s)",
    "vector_tflops": "vector peak (TFLOP/s)",
    "launch_overhead_us": "launch overhead (us)",
    "link_latency_us": "link latency (us)",
    "inter_node_latency_us": "inter-node latency (us)",
}
_UNIT_SUFFIXES = (
    ("_tok_s_per_kusd", "tokens/s per 1000 USD"), ("_tok_s", "tokens/s"), ("_ms", "ms"),
    ("_us", "us"), ("_s", "s"), ("_MiB", "MiB"), ("_GiB", "GiB"), ("_MB", "MB"), ("_GB", "GB"),
    ("_GBps", "GB/s"), ("_TBps", "TB/s"), ("_usd", "USD"), ("_tflops", "TFLOP/s"),
    ("_fraction", "fraction"),
)


def _unit(column: str) -> str:
    """The unit in a column's axis label ("MiB" for "l2_capacity_MiB"), "" when it has none."""
    label = axis_label(column)
    return label[label.rfind("(") + 1: -1] if label.endswith(")") else ""


def axis_label(column: str) -> str:
    """Axis title with its unit for a results column, e.g. ``"l2_capacity_MiB"`` -> ``"L2 capacity (MiB)"``."""
    if column in LABELS:
        return LABELS[column]
    if column.startswith("peak_tflops_"):
        return f"peak {column.removeprefix('peak_tflops_')} (TFLOP/s)"
    for suffix, unit in _UNIT_SUFFIXES:
        if column.endswith(suffix) and len(column) > len(suffix):
            return f"{column[: -len(suffix)].replace('_', ' ')} ({unit})"
    return column.replace("_", " ")


# --------------------------------------------------------------------------------------------
# Writing figures: HTML always, PNG (and other images) through kaleido when a Chrome is found.
# --------------------------------------------------------------------------------------------


class PNGExportWarning(UserWarning):
    """An image could not be written (no Chrome, or kaleido failed); the HTML was written."""


def _is_executable(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return p.is_file() and os.access(p, os.X_OK)


def _browser_lookup() -> tuple[str | None, str]:
    """(browser path, reason when none): BROWSER_PATH first, then choreographer's search, then Debian."""
    env = os.environ.get("BROWSER_PATH", "")
    if env:  # an explicit choice is honoured, not second-guessed
        if _is_executable(env):
            return env, ""
        return None, f"BROWSER_PATH={env!r} is not an executable file"
    try:
        from choreographer.browsers.chromium import Chromium

        found = Chromium.find_browser(skip_local=False)
    except Exception:  # noqa: BLE001 (best effort: an old or missing choreographer finds nothing)
        found = None
    if found and _is_executable(found):
        return str(found), ""
    if _is_executable(DEBIAN_HEADLESS_SHELL):
        return DEBIAN_HEADLESS_SHELL, ""
    return None, "no Chrome or Chromium found"


def find_browser() -> str | None:
    """Path of the Chrome kaleido will use for PNG export, or None when there is none.

    Order: the ``BROWSER_PATH`` environment variable when set (None if it names no executable
    file), then choreographer's search (``plotly_get_chrome``'s copy, ``chromium`` or
    ``google-chrome`` on ``PATH``), then Debian's ``/usr/lib/chromium/chromium-headless-shell``.
    """
    return _browser_lookup()[0]


def _server() -> Any:
    import kaleido

    return getattr(kaleido, "_global_server", None)


def _server_running() -> bool:
    server = _server()
    return bool(server is not None and server.is_running())


def _server_alive() -> bool:
    """False once kaleido's server thread has died (it dies when the browser fails to start, and a
    request queued to it would then wait forever)."""
    thread = getattr(_server(), "_thread", None)
    return thread is None or thread.is_alive()


class _ExportFailed(Exception):
    """Raised by the watchdog; ``fatal`` means later images would fail the same way."""

    def __init__(self, reason: str, fatal: bool) -> None:
        super().__init__(reason)
        self.fatal = fatal


def _guarded(fn: Callable[[], bytes], timeout_s: float, alive: Callable[[], bool]) -> bytes:
    """Run ``fn`` in a helper thread; give up when ``alive()`` turns False or after ``timeout_s``."""
    done = threading.Event()
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 (handed back to the caller below)
            out["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, name="roofline-kaleido-call", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not done.wait(0.05):
        if not alive():
            if done.is_set():
                break
            raise _ExportFailed("the kaleido server stopped (the browser failed to start)", True)
        if time.monotonic() > deadline:
            raise _ExportFailed(f"kaleido did not answer within {timeout_s:.0f} s", True)
    if "error" in out:
        e = out["error"]
        text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
        first = text.strip().splitlines()[0] if text.strip() else ""
        fatal = type(e).__name__ in {"ChromeNotFoundError", "BrowserFailedError", "BrowserClosedError"}
        raise _ExportFailed(f"kaleido failed: {type(e).__name__}: {first}"[:300], fatal)
    return out["value"]


class FigureWriter:
    """Writes figures as ``<stem>.html`` (always) and images (PNG by default) through kaleido.

    Used as a context manager it starts kaleido's sync server once (``kaleido.start_sync_server``),
    so the Chrome start (about 1.5 s) is paid once per run instead of once per image; later images
    take about 0.1 s each. The server is stopped on exit (unless it was already running before).
    Outside a ``with`` block, :meth:`write` starts a one-shot Chrome per image.

    When no Chrome is found or an export fails, the HTML is still written, the image is skipped,
    and a one-line :class:`PNGExportWarning` says how to enable PNG (once per writer when the cause
    affects every figure). The reason is kept in :attr:`image_error`.

    Args:
        formats: image formats besides HTML, from ``IMAGE_FORMATS``; ``("html",)`` writes HTML only.
        width, height: image size in CSS pixels (the HTML is responsive).
        scale: image pixel ratio (2 for sharper PNGs at twice the pixel count).
        timeout_s: longest wait for one image before it is given up.
        browser_path: Chrome to use (default: :func:`find_browser`).

    Example::

        with FigureWriter() as out:
            paths = out.write(fig, Path("report/pareto"))   # [report/pareto.html, report/pareto.png]
    """

    def __init__(self, *, formats: Sequence[str] = ("html", "png"), width: int = 1000,
                 height: int = 600, scale: float = 1.0, timeout_s: float = 120.0,
                 browser_path: str | os.PathLike[str] | None = None) -> None:
        if isinstance(formats, str):
            formats = (formats,)
        unknown = [f for f in formats if f != "html" and f not in IMAGE_FORMATS]
        if unknown:
            raise ValueError(f"unknown figure format(s) {unknown}; allowed: html, "
                             f"{', '.join(IMAGE_FORMATS)}")
        self.image_formats = tuple(dict.fromkeys(f for f in formats if f != "html"))
        self.width, self.height, self.scale = int(width), int(height), float(scale)
        self.timeout_s = float(timeout_s)
        self._browser_arg = None if browser_path is None else str(browser_path)
        self._browser: str | None = None
        self._resolved = False
        self._owns_server = False
        self._warned = False
        #: Why images are not being written (None while they are).
        self.image_error: str | None = None
        #: Seconds spent on each image written, in order (first one includes the Chrome start).
        self.image_seconds: list[float] = []

    # -- lifecycle --------------------------------------------------------------------------

    def _resolve_browser(self) -> None:
        if self._resolved:
            return
        self._resolved = True
        if not self.image_formats:
            return
        try:
            import kaleido  # noqa: F401
        except ImportError:
            self.image_error = "kaleido is not installed (pip install 'kaleido>=1')"
            return
        if self._browser_arg is not None:
            if _is_executable(self._browser_arg):
                self._browser = self._browser_arg
            else:
                self.image_error = f"browser_path={self._browser_arg!r} is not an executable file"
            return
        self._browser, reason = _browser_lookup()
        if self._browser is None:
            self.image_error = reason

    def __enter__(self) -> FigureWriter:
        self._resolve_browser()
        if self._browser is not None and not _server_running():
            import kaleido

            kaleido.start_sync_server(path=self._browser, mathjax=False, timeout=self.timeout_s,
                                      silence_warnings=True)
            self._owns_server = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the kaleido server if this writer started it."""
        if not self._owns_server:
            return
        import kaleido

        self._owns_server = False
        # Stopping joins kaleido's server thread; a server stuck on a render must not hang the
        # caller, so wait a bounded time (a dead thread, or a normal stop, returns at once).
        stopper = threading.Thread(target=kaleido.stop_sync_server,
                                   kwargs={"silence_warnings": True}, daemon=True)
        stopper.start()
        stopper.join(10.0)

    # -- writing ----------------------------------------------------------------------------

    def _warn(self, message: str) -> None:
        warnings.warn(message, PNGExportWarning, stacklevel=3)

    def _render(self, fig: Any, fmt: str) -> bytes:
        import kaleido

        fig_dict = fig.to_dict() if hasattr(fig, "to_dict") else fig
        opts = {"format": fmt, "width": self.width, "height": self.height, "scale": self.scale}
        if _server_running():
            return _guarded(lambda: kaleido.calc_fig_sync(fig_dict, opts=opts),
                            self.timeout_s + 30.0, _server_alive)
        kopts = {"path": self._browser, "mathjax": False, "timeout": self.timeout_s}
        return _guarded(lambda: kaleido.calc_fig_sync(fig_dict, opts=opts, kopts=kopts),
                        self.timeout_s + 60.0, lambda: True)

    def write(self, fig: go.Figure, path_stem: str | os.PathLike[str]) -> list[Path]:
        """Write ``fig`` to ``<path_stem>.html`` and the writer's image formats.

        Args:
            fig: a plotly Figure.
            path_stem: output path without extension; parent folders are created.

        Returns:
            The files written, HTML first.
        """
        stem = Path(path_stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        html = stem.with_name(stem.name + ".html")
        fig.write_html(html, include_plotlyjs=True, full_html=True,
                       config={"displaylogo": False})
        written = [html]
        self._resolve_browser()
        for fmt in self.image_formats:
            target = stem.with_name(f"{stem.name}.{fmt}")
            if self.image_error is not None:
                if not self._warned:
                    self._warned = True
                    self._warn(f"{fmt.upper()} export skipped ({self.image_error}); HTML written to "
                               f"{html}; {ENABLE_PNG_HINT}")
                break
            t0 = time.perf_counter()
            try:
                data = self._render(fig, fmt)
            except _ExportFailed as e:
                if e.fatal:
                    self.image_error = str(e)
                    self.close()
                    self._warned = True
                self._warn(f"{fmt.upper()} export of {target} failed ({e}); HTML written to {html}; "
                           f"{ENABLE_PNG_HINT}")
                if e.fatal:
                    break
                continue
            target.write_bytes(data)
            self.image_seconds.append(time.perf_counter() - t0)
            written.append(target)
        return written


def save_figure(fig: go.Figure, path_stem: str | os.PathLike[str], *,
                formats: Sequence[str] = ("html", "png"), width: int = 1000,
                height: int = 600, scale: float = 1.0) -> list[Path]:
    """Write one figure as ``<path_stem>.html`` (always) and ``<path_stem>.png``.

    For several figures use :class:`FigureWriter` as a context manager, which keeps one Chrome
    warm instead of starting one per image (about 1.5 s each). A running kaleido sync server is
    used when there is one.

    Returns:
        The files written, HTML first. Without a Chrome only the HTML, with a
        :class:`PNGExportWarning` saying how to enable PNG.
    """
    return FigureWriter(formats=formats, width=width, height=height, scale=scale).write(
        fig, path_stem)


# --------------------------------------------------------------------------------------------
# Shared helpers of the info functions.
# --------------------------------------------------------------------------------------------


def _frame(data: Any) -> pd.DataFrame:
    import pandas as pd

    return data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)


def _require(df: pd.DataFrame, columns: Iterable[str | None], what: str) -> None:
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise KeyError(f"{what}: column(s) {missing} not in the table; columns are {list(df.columns)}")


#: Metric columns that are not in ``roofline.engine.METRICS`` (derived by analyses of results).
EXTRA_METRICS = frozenset({"collective_to_prefetch_ratio"})


def _metric_columns() -> set[str]:
    from roofline.engine import METRICS

    return set(METRICS) | EXTRA_METRICS


def _default_hover(df: pd.DataFrame, exclude: Iterable[str | None]) -> list[str]:
    """Configuration columns: everything that is not a metric (nor already on an axis)."""
    skip = _metric_columns() | {c for c in exclude if c is not None}
    return [c for c in df.columns if c not in skip]


def _is_continuous(values: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def _hover_template(columns: Sequence[str], kinds: Sequence[bool], head: Sequence[str]) -> str:
    lines = list(head)
    for i, (c, numeric) in enumerate(zip(columns, kinds)):
        lines.append(f"{c}: %{{customdata[{i}]:.5~g}}" if numeric else f"{c}: %{{customdata[{i}]}}")
    return "<br>".join(lines) + "<extra></extra>"


def _hover_data(df: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
    import pandas as pd

    if not columns:
        return np.empty((len(df), 0), dtype=object), []
    kinds = [bool(pd.api.types.is_float_dtype(df[c])) for c in columns]
    return df[list(columns)].to_numpy(dtype=object), kinds


def pareto_mask_2d(x: Any, y: Any, *, x_better: str = "min", y_better: str = "max") -> np.ndarray:
    """Non-dominated points of two objectives (vectorized, O(n log n)).

    A point is dominated when another is at least as good in both objectives and better in one.
    Equal points are all kept. Non-finite points are never on the front.

    Args:
        x, y: array_like of shape (n,).
        x_better, y_better: ``"min"`` or ``"max"``: which direction is better.

    Returns:
        Boolean array of shape (n,), True on the front.
    """
    for name, v in (("x_better", x_better), ("y_better", y_better)):
        if v not in ("min", "max"):
            raise ValueError(f"{name} must be 'min' or 'max', got {v!r}")
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-d of the same length, got {xs.shape} and {ys.shape}")
    # work as "smaller x better, larger y better"
    a = xs if x_better == "min" else -xs
    b = ys if y_better == "max" else -ys
    finite = np.isfinite(a) & np.isfinite(b)
    mask = np.zeros(xs.shape, dtype=bool)
    idx = np.flatnonzero(finite)
    if idx.size == 0:
        return mask
    order = idx[np.lexsort((-b[idx], a[idx]))]  # x ascending, then y descending
    a_s, b_s = a[order], b[order]
    best = np.maximum.accumulate(b_s)
    first = np.searchsorted(a_s, a_s, side="left")  # first point with the same x
    best_before = np.where(first > 0, best[np.maximum(first - 1, 0)], -np.inf)
    dominated = (best_before >= b_s) | (b_s[first] > b_s)
    mask[order] = ~dominated
    return mask


# --------------------------------------------------------------------------------------------
# Pareto front.
# --------------------------------------------------------------------------------------------


class ParetoFrontInfo(NamedTuple):
    x: np.ndarray  # (n,) every configuration
    y: np.ndarray  # (n,)
    on_front: np.ndarray  # (n,) bool
    front_order: np.ndarray  # indices of the front points, x ascending (then y)
    color: np.ndarray | None  # (n,) color column values
    color_continuous: bool
    hover_columns: list[str]
    hover_numeric: list[bool]
    customdata: np.ndarray  # (n, len(hover_columns)) object


def _get_pareto_front_info(df: pd.DataFrame, x: str, y: str, *, front_mask: Any = None,
                           color: str | None = None, hover: Sequence[str] | None = None,
                           x_better: str = "min", y_better: str = "max") -> ParetoFrontInfo:
    df = _frame(df)
    _require(df, [x, y, color, *(hover or [])], "plot_pareto_front")
    xs = df[x].to_numpy(dtype=float)
    ys = df[y].to_numpy(dtype=float)
    if front_mask is None:
        on_front = pareto_mask_2d(xs, ys, x_better=x_better, y_better=y_better)
    else:
        on_front = np.asarray(front_mask, dtype=bool)
        if on_front.shape != xs.shape:
            raise ValueError(f"front_mask has shape {on_front.shape}, the table has {len(df)} rows")
    front = np.flatnonzero(on_front)
    front = front[np.lexsort((ys[front], xs[front]))]
    hover_cols = list(hover) if hover is not None else _default_hover(df, [x, y])
    customdata, numeric = _hover_data(df, hover_cols)
    color_values = df[color].to_numpy() if color is not None else None
    continuous = color is not None and _is_continuous(df[color])
    return ParetoFrontInfo(xs, ys, on_front, front, color_values, continuous, hover_cols, numeric,
                           customdata)


def plot_pareto_front(df: pd.DataFrame, x: str, y: str, *, front_mask: Any = None,
                      color: str | None = None, hover: Sequence[str] | None = None,
                      x_title: str | None = None, y_title: str | None = None,
                      title: str | None = None, x_better: str = "min",
                      y_better: str = "max") -> go.Figure:
    """Every configuration as a faint point, the Pareto front highlighted and connected.

    Args:
        df: one row per configuration (a sweep's results table).
        x, y: the two objective columns.
        front_mask: bool per row marking the front (default: computed with :func:`pareto_mask_2d`
            from ``x_better`` and ``y_better``).
        color: column coloring the points (numeric: color scale; otherwise one trace per value).
        hover: columns shown when hovering a point (default: every column that is not a metric).
        x_title, y_title, title: override the titles (default: the column names with units).
        x_better, y_better: ``"min"`` or ``"max"`` (default: x such as cost is minimized, y such
            as throughput maximized).

    Returns:
        A plotly Figure: the point trace(s) ("all configurations" or one per color value) and
        the "Pareto front" trace.
    """
    import plotly.graph_objects as go

    info = _get_pareto_front_info(df, x, y, front_mask=front_mask, color=color, hover=hover,
                                  x_better=x_better, y_better=y_better)
    xt, yt = x_title or axis_label(x), y_title or axis_label(y)
    tmpl = _hover_template(info.hover_columns, info.hover_numeric,
                           [f"{xt}: %{{x:.5~g}}", f"{yt}: %{{y:.5~g}}"])
    fig = go.Figure()
    if info.color is None or info.color_continuous:
        marker: dict[str, Any] = {"size": 6, "opacity": 0.45, "color": "#7f7f7f"}
        if info.color_continuous:
            marker.update(color=info.color, colorscale="Viridis", showscale=True,
                          colorbar={"title": {"text": axis_label(color or "")}})
        fig.add_trace(go.Scattergl(x=info.x, y=info.y, mode="markers", name="all configurations",
                                   marker=marker, customdata=info.customdata,
                                   hovertemplate=tmpl))
    else:
        values = info.color
        for i, v in enumerate(dict.fromkeys(values.tolist())):
            sel = values == v
            fig.add_trace(go.Scattergl(
                x=info.x[sel], y=info.y[sel], mode="markers", name=f"{color}={v}",
                marker={"size": 6, "opacity": 0.45, "color": PALETTE[i % len(PALETTE)]},
                customdata=info.customdata[sel], hovertemplate=tmpl))
    f = info.front_order
    fig.add_trace(go.Scatter(
        x=info.x[f], y=info.y[f], mode="lines+markers", name="Pareto front",
        line={"color": "black", "width": 2},
        marker={"size": 9, "color": "black", "symbol": "diamond"},
        customdata=info.customdata[f], hovertemplate=tmpl))
    fig.update_layout(
        template=TEMPLATE,
        title=title or f"Pareto front: {yt} against {xt} ({f.size} of {info.x.size} configurations)",
        xaxis_title=xt, yaxis_title=yt, legend={"orientation": "h", "y": -0.15})
    return fig


# --------------------------------------------------------------------------------------------
# A metric against a swept parameter (e.g. performance per cost against L2 size).
# --------------------------------------------------------------------------------------------


class MetricCurve(NamedTuple):
    group: Any  # value of the group column, None without groups
    label: str  # series name, e.g. "with prefetch"
    column: str  # metric column
    x: np.ndarray  # (k,) sorted parameter values
    y: np.ndarray  # (k,) metric reduced over the rows of each x
    best_index: int  # index into x of the best y, -1 when every y is NaN

    @property
    def best_x(self) -> float:
        return float(self.x[self.best_index]) if self.best_index >= 0 else float("nan")

    @property
    def best_y(self) -> float:
        return float(self.y[self.best_index]) if self.best_index >= 0 else float("nan")


class MetricVsParameterInfo(NamedTuple):
    x_column: str
    group_column: str | None
    groups: list[Any]  # [None] without groups
    curves: list[MetricCurve]  # groups outer, series inner


def _default_series(df: pd.DataFrame, y: str) -> dict[str, str]:
    base = f"baseline_{y}"
    if base in df.columns and not y.startswith("baseline_"):
        return {"with prefetch": y, "without prefetch": base}
    return {axis_label(y): y}


def _get_metric_vs_parameter_info(df: pd.DataFrame, x: str = "l2_capacity_MiB",
                                  y: str = "tok_s_per_kusd", *,
                                  series: Mapping[str, str] | None = None,
                                  group: str | None = None, reduce: str = "max",
                                  better: str = "max") -> MetricVsParameterInfo:
    df = _frame(df)
    series = dict(series) if series is not None else _default_series(df, y)
    _require(df, [x, group, *series.values()], "plot_metric_vs_parameter")
    if reduce not in ("max", "min", "mean", "median"):
        raise ValueError(f"reduce must be one of max, min, mean, median; got {reduce!r}")
    if better not in ("max", "min"):
        raise ValueError(f"better must be 'max' or 'min', got {better!r}")
    groups = list(dict.fromkeys(df[group].tolist())) if group is not None else [None]
    curves: list[MetricCurve] = []
    for g in groups:
        part = df if group is None else df[df[group] == g]
        reduced = part.groupby(x, sort=True)[list(series.values())].agg(reduce)
        xs = reduced.index.to_numpy(dtype=float)
        for label, col in series.items():
            ys = reduced[col].to_numpy(dtype=float)
            if np.isnan(ys).all():
                best = -1
            else:
                best = int(np.nanargmax(ys) if better == "max" else np.nanargmin(ys))
            curves.append(MetricCurve(g, label, col, xs, ys, best))
    return MetricVsParameterInfo(x, group, groups, curves)


def plot_metric_vs_parameter(df: pd.DataFrame, x: str = "l2_capacity_MiB",
                             y: str = "tok_s_per_kusd", *,
                             series: Mapping[str, str] | None = None, group: str | None = None,
                             title: str | None = None, mark_best: bool = True,
                             reduce: str = "max", better: str = "max") -> go.Figure:
    """A metric against one swept parameter, one line per series, the best x of each marked.

    Rows that share an x (other parameters swept too) are reduced with ``reduce`` (default: the
    best value reachable at that x).

    Args:
        df: results table.
        x: parameter column (default L2 capacity in MiB).
        y: metric column (default performance per cost); used when ``series`` is None.
        series: legend label -> metric column. Default: ``{"with prefetch": y, "without
            prefetch": "baseline_" + y}`` when the baseline column exists, else just ``y``.
        group: column splitting the table into one panel each (e.g. ``"model"``).
        title: figure title (default names the metric and parameter with units).
        mark_best: mark and label the best x of every series.
        reduce: ``"max"``, ``"min"``, ``"mean"`` or ``"median"`` over the rows of one x.
        better: ``"max"`` or ``"min"``: which y is best.

    Returns:
        A plotly Figure with one line trace per (group, series), named by the series label, and
        one "best ..." marker trace per curve when ``mark_best``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    info = _get_metric_vs_parameter_info(df, x, y, series=series, group=group, reduce=reduce,
                                         better=better)
    labels = list(dict.fromkeys(c.label for c in info.curves))
    colors = {lab: PALETTE[i % len(PALETTE)] for i, lab in enumerate(labels)}
    n = len(info.groups)
    cols = min(n, 3)
    rows = -(-n // cols)
    xt = axis_label(x)
    bases = {c.column.removeprefix("baseline_") for c in info.curves}
    yt = axis_label(bases.pop() if len(bases) == 1 else y)
    titles = [f"{group} = {g}" for g in info.groups] if group is not None else None
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=0.12 if rows > 1 else 0.1)
    for gi, g in enumerate(info.groups):
        r, c = gi // cols + 1, gi % cols + 1
        for curve in (cv for cv in info.curves if cv.group == g):
            color = colors[curve.label]
            fig.add_trace(go.Scatter(
                x=curve.x, y=curve.y, mode="lines+markers", name=curve.label,
                legendgroup=curve.label, showlegend=gi == 0,
                line={"color": color, "width": 2}, marker={"size": 5, "color": color},
                hovertemplate=f"{curve.label}<br>{xt}: %{{x:.5~g}}<br>"
                              f"{axis_label(curve.column)}: %{{y:.5~g}}<extra></extra>"),
                row=r, col=c)
            if mark_best and curve.best_index >= 0:
                fig.add_trace(go.Scatter(
                    x=[curve.best_x], y=[curve.best_y], mode="markers+text",
                    name=f"best {curve.label}", legendgroup=curve.label, showlegend=False,
                    marker={"size": 14, "color": color, "symbol": "star",
                            "line": {"color": "black", "width": 1}},
                    text=[f"best {curve.best_x:.4g} {_unit(x)}".rstrip()],
                    textposition="top center",
                    textfont={"color": color},
                    hovertemplate=f"best, {curve.label}<br>{xt}: %{{x:.5~g}}<br>"
                                  f"{axis_label(curve.column)}: %{{y:.5~g}}<extra></extra>"),
                    row=r, col=c)
        fig.update_xaxes(title_text=xt if gi // cols == rows - 1 else None, row=r, col=c)
        fig.update_yaxes(title_text=yt if c == 1 else None, rangemode="tozero", row=r, col=c)
    fig.update_layout(template=TEMPLATE, title=title or f"{yt} against {xt}",
                      legend={"orientation": "h", "y": -0.15 if rows == 1 else -0.08})
    return fig


# --------------------------------------------------------------------------------------------
# Latency breakdowns.
# --------------------------------------------------------------------------------------------


class BreakdownInfo(NamedTuple):
    columns: list[str]  # bars: phases, or prediction labels
    groups: list[str]  # stacked parts (kinds or ops), bottom first
    time_ms: np.ndarray  # (n_groups, n_columns)
    share: np.ndarray  # (n_groups, n_columns): time / column total
    total_ms: np.ndarray  # (n_columns,)
    group_kinds: list[str]  # operator kind of each group (its first row's kind)


def _breakdown_of(obj: Any) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    return obj.breakdown if hasattr(obj, "breakdown") else obj


def _group_order(keys: Iterable[str], group_by: str) -> list[str]:
    seen = list(dict.fromkeys(keys))
    if group_by == "kind":
        return [k for k in KIND_ORDER if k in seen] + [k for k in seen if k not in KIND_ORDER]
    if group_by == "bound":
        return [k for k in BOUND_COLORS if k in seen] + [k for k in seen if k not in BOUND_COLORS]
    return seen


def _aggregate(columns: Mapping[str, Sequence[Mapping[str, Any]]], group_by: str) -> BreakdownInfo:
    keys: list[str] = []
    kind_of: dict[str, str] = {}
    for label, rows in columns.items():
        for r in rows:
            if group_by not in r or "time_ms" not in r:
                raise KeyError(f"breakdown row of {label!r} has no {group_by!r} or 'time_ms' key; "
                               f"keys are {sorted(r)}")
            keys.append(str(r[group_by]))
            kind_of.setdefault(str(r[group_by]), str(r.get("kind", "")))
    groups = _group_order(keys, group_by)
    index = {g: i for i, g in enumerate(groups)}
    names = list(columns)
    time_ms = np.zeros((len(groups), len(names)))
    for j, label in enumerate(names):
        rows = columns[label]
        if rows:
            gi = np.array([index[str(r[group_by])] for r in rows])
            t = np.array([float(r["time_ms"]) for r in rows])
            np.add.at(time_ms[:, j], gi, t)
    total = time_ms.sum(axis=0)
    share = np.divide(time_ms, total, out=np.zeros_like(time_ms), where=total > 0)
    return BreakdownInfo(names, groups, time_ms, share, total, [kind_of[g] for g in groups])


def _get_latency_breakdown_info(breakdown: Any, *, group_by: str = "kind",
                                phases: Sequence[str] | None = None) -> BreakdownInfo:
    bd = _breakdown_of(breakdown)
    phases = list(phases) if phases is not None else list(bd)
    missing = [p for p in phases if p not in bd]
    if missing:
        raise KeyError(f"phase(s) {missing} not in the breakdown; it has {list(bd)}")
    return _aggregate({p: bd[p] for p in phases}, group_by)


def _get_breakdown_comparison_info(breakdowns: Mapping[str, Any], phase: str = "decode", *,
                                   group_by: str = "kind") -> BreakdownInfo:
    cols = {}
    for label, b in breakdowns.items():
        bd = _breakdown_of(b)
        if phase not in bd:
            raise KeyError(f"breakdown {label!r} has no phase {phase!r}; it has {list(bd)}")
        cols[str(label)] = bd[phase]
    return _aggregate(cols, group_by)


def _shade(color: str, t: float) -> str:
    """``color`` mixed with white (t > 0) or black (t < 0) by ``|t|``."""
    rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    rgb = rgb + (255.0 - rgb) * t if t >= 0 else rgb * (1.0 + t)
    return "#" + "".join(f"{int(round(c)):02x}" for c in np.clip(rgb, 0, 255))


def _group_colors(groups: Sequence[str], group_by: str,
                  kinds: Sequence[str] | None = None) -> dict[str, str]:
    """Fixed colors per kind and bound; ops get shades of their kind's color."""
    if group_by not in ("kind", "bound") and kinds is not None and all(k in KIND_COLORS
                                                                      for k in kinds):
        out = {}
        for kind in dict.fromkeys(kinds):
            members = [g for g, k in zip(groups, kinds) if k == kind]
            shades = np.linspace(-0.3, 0.55, len(members)) if len(members) > 1 else [0.0]
            out.update({g: _shade(KIND_COLORS[kind], float(t)) for g, t in zip(members, shades)})
        return out
    fixed = KIND_COLORS if group_by == "kind" else BOUND_COLORS if group_by == "bound" else {}
    out, k = {}, 0
    for g in groups:
        if g in fixed:
            out[g] = fixed[g]
        else:
            out[g] = PALETTE[k % len(PALETTE)]
            k += 1
    return out


_PHASE_TITLES = {"prefill": "prefill (TTFT)", "decode": "decode step (mean, TPOT)"}


def plot_latency_breakdown(breakdown: Any, *, group_by: str = "kind",
                           title: str | None = None) -> go.Figure:
    """Stacked bars of time per phase, split by operator kind (or by op).

    Each phase gets its own panel and time axis: a prefill pass and one decode step differ by
    orders of magnitude.

    Args:
        breakdown: ``roofline.predict(...).breakdown`` (phase -> rows with ``op``, ``kind``,
            ``bound``, ``time_ms``, ...), or the Prediction itself.
        group_by: row key the bars are split by: ``"kind"`` (gemm, attention, vector, embedding,
            collective, p2p), ``"op"`` or ``"bound"``.
        title: figure title.

    Returns:
        A plotly Figure with one bar trace per (group, phase), named by the group.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    info = _get_latency_breakdown_info(breakdown, group_by=group_by)
    colors = _group_colors(info.groups, group_by, info.group_kinds)
    n = len(info.columns)
    fig = make_subplots(rows=1, cols=max(n, 1), horizontal_spacing=0.15,
                        subplot_titles=[f"{_PHASE_TITLES.get(p, p)}: {t:.4g} ms"
                                        for p, t in zip(info.columns, info.total_ms)])
    for j, phase in enumerate(info.columns):
        for i, g in enumerate(info.groups):
            t = info.time_ms[i, j]
            fig.add_trace(go.Bar(
                x=[phase], y=[t], name=g, legendgroup=g, showlegend=j == 0,
                marker_color=colors[g], customdata=[[info.share[i, j] * 100]],
                text=[f"{g} {info.share[i, j]:.0%}" if info.share[i, j] >= 0.04 else ""],
                textposition="inside", insidetextanchor="middle",
                hovertemplate=f"{phase}, {g}<br>%{{y:.4g}} ms (%{{customdata[0]:.1f}}%)"
                              "<extra></extra>"),
                row=1, col=j + 1)
        fig.update_yaxes(title_text="time (ms)", row=1, col=j + 1)
    fig.update_layout(template=TEMPLATE, barmode="stack", bargap=0.45,
                      title=title or f"Latency breakdown by operator {group_by} (ms)",
                      legend={"traceorder": "reversed"})
    return fig


def plot_breakdown_comparison(breakdowns: Mapping[str, Any], phase: str = "decode", *,
                              group_by: str = "kind", title: str | None = None) -> go.Figure:
    """Stacked bars of one phase's time for several predictions side by side.

    Args:
        breakdowns: label -> ``Prediction.breakdown`` (or the Prediction).
        phase: ``"decode"`` (one decode step, the mean over the generated tokens) or ``"prefill"``.
        group_by: ``"kind"``, ``"op"`` or ``"bound"``.
        title: figure title.

    Returns:
        A plotly Figure with one stacked bar trace per group, x = the labels.
    """
    import plotly.graph_objects as go

    info = _get_breakdown_comparison_info(breakdowns, phase, group_by=group_by)
    colors = _group_colors(info.groups, group_by, info.group_kinds)
    fig = go.Figure()
    for i, g in enumerate(info.groups):
        fig.add_trace(go.Bar(
            x=info.columns, y=info.time_ms[i], name=g, marker_color=colors[g],
            customdata=info.share[i][:, None] * 100,
            text=[f"{g} {s:.0%}" if s >= 0.04 else "" for s in info.share[i]],
            textposition="inside", insidetextanchor="middle",
            hovertemplate=f"%{{x}}, {g}<br>%{{y:.4g}} ms (%{{customdata[0]:.1f}}%)<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=info.columns, y=info.total_ms, mode="text", name="total",
        text=[f"{t:.4g} ms" for t in info.total_ms], textposition="top center",
        showlegend=False, hoverinfo="skip"))
    ymax = float(info.total_ms.max()) if info.total_ms.size else 1.0
    fig.update_layout(
        template=TEMPLATE, barmode="stack",
        title=title or f"{_PHASE_TITLES.get(phase, phase)} time by operator {group_by} (ms)",
        yaxis_title=f"{phase} time (ms)", yaxis_range=[0, ymax * 1.12],
        legend={"traceorder": "reversed"})
    return fig


# --------------------------------------------------------------------------------------------
# Roofline chart.
# --------------------------------------------------------------------------------------------


class RooflineInfo(NamedTuple):
    op: list[str]  # operators placed on the chart (those with FLOPs, bytes and time)
    kind: list[str]
    bound: list[str]
    intensity: np.ndarray  # FLOP per byte of weights + KV + activations
    attained_flops: np.ndarray  # FLOP/s reached: flops / time
    time_ms: np.ndarray
    share: np.ndarray  # of the phase time
    excluded_ops: list[str]  # collectives and ops without FLOPs or bytes
    excluded_share: float
    ai_grid: np.ndarray  # (k,) FLOP/byte
    hbm_ceiling: np.ndarray  # (k,) min(peak, AI * hbm_Bps)
    l2_ceiling: np.ndarray | None  # (k,) min(peak, AI * l2_Bps)
    ridge_hbm: float  # peak / hbm_Bps
    ridge_l2: float | None
    peak_flops: float


def _get_roofline_info(breakdown_rows: Any, *, peak_flops: float, hbm_Bps: float,
                       l2_Bps: float | None = None, points: int = 200) -> RooflineInfo:
    if peak_flops <= 0 or hbm_Bps <= 0 or (l2_Bps is not None and l2_Bps <= 0):
        raise ValueError(f"peak_flops, hbm_Bps and l2_Bps must be > 0, got {peak_flops}, "
                         f"{hbm_Bps}, {l2_Bps}")
    rows = list(breakdown_rows.to_dict("records") if hasattr(breakdown_rows, "to_dict")
                else breakdown_rows)

    def col(key: str) -> np.ndarray:
        return np.array([float(r.get(key, 0.0)) for r in rows])

    flops, time_ms = col("flops"), col("time_ms")
    nbytes = col("weight_bytes") + col("kv_bytes") + col("activation_bytes")
    share = col("share") if rows and "share" in rows[0] else (
        time_ms / time_ms.sum() if time_ms.sum() > 0 else np.zeros_like(time_ms))
    keep = (flops > 0) & (nbytes > 0) & (time_ms > 0)
    ops = [str(r.get("op", "")) for r in rows]
    intensity = np.divide(flops, nbytes, out=np.zeros_like(flops), where=nbytes > 0)[keep]
    attained = flops[keep] / (time_ms[keep] * 1e-3)
    ridge_hbm = peak_flops / hbm_Bps
    ridge_l2 = peak_flops / l2_Bps if l2_Bps is not None else None
    anchors = [*intensity.tolist(), ridge_hbm] + ([ridge_l2] if ridge_l2 else [])
    lo = 10 ** np.floor(np.log10(min(anchors)) - 0.5)
    hi = 10 ** np.ceil(np.log10(max(anchors)) + 0.5)
    grid = np.geomspace(lo, hi, points)
    grid = np.unique(np.concatenate([grid, [ridge_hbm] + ([ridge_l2] if ridge_l2 else [])]))
    return RooflineInfo(
        op=[o for o, k in zip(ops, keep) if k],
        kind=[str(r.get("kind", "")) for r, k in zip(rows, keep) if k],
        bound=[str(r.get("bound", "")) for r, k in zip(rows, keep) if k],
        intensity=intensity, attained_flops=attained, time_ms=time_ms[keep], share=share[keep],
        excluded_ops=[o for o, k in zip(ops, keep) if not k],
        excluded_share=float(share[~keep].sum()),
        ai_grid=grid, hbm_ceiling=np.minimum(peak_flops, grid * hbm_Bps),
        l2_ceiling=None if l2_Bps is None else np.minimum(peak_flops, grid * l2_Bps),
        ridge_hbm=ridge_hbm, ridge_l2=ridge_l2, peak_flops=float(peak_flops))


def plot_roofline(breakdown_rows: Any, *, peak_flops: float, hbm_Bps: float,
                  l2_Bps: float | None = None, title: str | None = None) -> go.Figure:
    """Roofline chart: arithmetic intensity against attainable FLOP/s, operators placed on it.

    Args:
        breakdown_rows: one phase of ``Prediction.breakdown`` (e.g. ``p.breakdown["decode"]``), a
            list of dicts or a DataFrame with ``op``, ``kind``, ``bound``, ``flops``,
            ``weight_bytes``, ``kv_bytes``, ``activation_bytes``, ``time_ms``, ``share``.
        peak_flops: peak compute in FLOP/s (e.g. ``hw.compute.peak_for("bf16")``).
        hbm_Bps: HBM bandwidth in bytes/s (``hw.memory.hbm_bandwidth_Bps``).
        l2_Bps: L2 bandwidth in bytes/s; adds the L2 ceiling (prefetched data is read from L2).
        title: figure title.

    Returns:
        A plotly Figure: the "HBM roof" (and "L2 roof") line, then one marker trace per bound
        ("compute-bound ops", "memory-bound ops", ...), marker area proportional to time share.
        Operators without FLOPs (collectives, embedding) are listed in a note instead.
    """
    import plotly.graph_objects as go

    info = _get_roofline_info(breakdown_rows, peak_flops=peak_flops, hbm_Bps=hbm_Bps,
                              l2_Bps=l2_Bps)
    T = 1e12
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=info.ai_grid, y=info.hbm_ceiling / T, mode="lines", name="HBM roof",
        line={"color": "black", "width": 2},
        hovertemplate="HBM roof<br>%{x:.4g} FLOP/byte: %{y:.4g} TFLOP/s<extra></extra>"))
    if info.l2_ceiling is not None:
        fig.add_trace(go.Scatter(
            x=info.ai_grid, y=info.l2_ceiling / T, mode="lines", name="L2 roof",
            line={"color": "#7f7f7f", "width": 2, "dash": "dash"},
            hovertemplate="L2 roof<br>%{x:.4g} FLOP/byte: %{y:.4g} TFLOP/s<extra></extra>"))
    bounds = _group_order(info.bound, "bound")
    size = 8 + 42 * np.sqrt(np.clip(info.share, 0, 1))
    # labels of neighbouring points go to different sides
    cycle = ("bottom center", "top center", "middle right", "middle left")
    positions = [""] * len(info.op)
    for rank, i in enumerate(np.lexsort((info.attained_flops, info.intensity))):
        positions[i] = cycle[rank % len(cycle)]
    for b in bounds:
        sel = np.array([x == b for x in info.bound], dtype=bool)
        names = [o for o, s in zip(info.op, sel) if s]
        kinds = [k for k, s in zip(info.kind, sel) if s]
        fig.add_trace(go.Scatter(
            x=info.intensity[sel], y=info.attained_flops[sel] / T, mode="markers+text",
            name=f"{b}-bound ops", text=[o if s >= 0.03 else "" for o, s in
                                         zip(names, info.share[sel])],
            textposition=[positions[i] for i in np.flatnonzero(sel)], textfont={"size": 10},
            marker={"size": size[sel], "color": BOUND_COLORS.get(b, "#7f7f7f"), "opacity": 0.75,
                    "line": {"color": "black", "width": 0.5}},
            customdata=np.column_stack([names, kinds, info.time_ms[sel], info.share[sel] * 100]),
            hovertemplate="%{customdata[0]} (%{customdata[1]})<br>"
                          "intensity: %{x:.4g} FLOP/byte<br>attained: %{y:.4g} TFLOP/s<br>"
                          "time: %{customdata[2]:.4g} ms (%{customdata[3]:.3g}%)<extra></extra>"))
    ridges = f"ridge {info.ridge_hbm:.3g} FLOP/byte (HBM)"
    if info.ridge_l2 is not None:
        ridges += f", {info.ridge_l2:.3g} (L2)"
    # annotations on a log axis take log10 of the position
    fig.add_annotation(x=0.01, y=np.log10(info.peak_flops / T), xref="paper",
                       yref="y", text=f"peak {info.peak_flops / T:.4g} TFLOP/s; {ridges}",
                       showarrow=False, xanchor="left", yanchor="bottom", font={"size": 11})
    if info.excluded_ops:
        names = ", ".join(dict.fromkeys(info.excluded_ops))
        if len(names) > 90:
            names = names[:87] + "..."
        fig.add_annotation(xref="paper", yref="paper", x=0, y=-0.2, xanchor="left",
                           showarrow=False, font={"size": 11},
                           text=f"not on the chart (no FLOPs or bytes): {names}; "
                                f"{info.excluded_share:.1%} of the time")
    ymin = min(float(info.attained_flops.min()) if info.attained_flops.size else info.peak_flops,
               float(info.hbm_ceiling[0])) / T
    fig.update_layout(
        template=TEMPLATE, title=title or "Roofline: operators against the HBM and L2 roofs",
        xaxis={"type": "log", "dtick": 1, "title": "arithmetic intensity (FLOP/byte of weights + "
                                                   "KV + activations)",
               "range": [np.log10(info.ai_grid[0]), np.log10(info.ai_grid[-1])]},
        yaxis={"type": "log", "dtick": 1, "title": "attainable performance (TFLOP/s)",
               "range": [np.log10(ymin) - 0.3, np.log10(info.peak_flops / T) + 0.4]},
        legend={"orientation": "h", "y": -0.28}, margin={"b": 130})
    return fig


# --------------------------------------------------------------------------------------------
# Prefetch speedup against the collective / prefetch time ratio (PRESERVE reproduction).
# --------------------------------------------------------------------------------------------


class SpeedupVsRatioInfo(NamedTuple):
    ratio: np.ndarray  # (n,)
    speedup: np.ndarray  # (n,)
    color: np.ndarray | None
    color_continuous: bool
    log_x: bool  # ratios positive and spanning more than 20x
    best_index: int  # row of the largest speedup, -1 when none
    hover_columns: list[str]
    hover_numeric: list[bool]
    customdata: np.ndarray


def _get_speedup_vs_ratio_info(df: pd.DataFrame, ratio: str = "collective_to_prefetch_ratio",
                               speedup: str = "prefetch_speedup", *, color: str | None = None,
                               hover: Sequence[str] | None = None) -> SpeedupVsRatioInfo:
    df = _frame(df)
    _require(df, [ratio, speedup, color, *(hover or [])], "plot_speedup_vs_ratio")
    r = df[ratio].to_numpy(dtype=float)
    s = df[speedup].to_numpy(dtype=float)
    finite = np.isfinite(r) & np.isfinite(s)
    pos = r[finite & (r > 0)]
    log_x = bool(pos.size == finite.sum() and pos.size > 0 and pos.max() / pos.min() > 20)
    best = int(np.nanargmax(np.where(finite, s, np.nan))) if finite.any() else -1
    hover_cols = list(hover) if hover is not None else _default_hover(df, [ratio, speedup])
    customdata, numeric = _hover_data(df, hover_cols)
    cvals = df[color].to_numpy() if color is not None else None
    return SpeedupVsRatioInfo(r, s, cvals, color is not None and _is_continuous(df[color]),
                              log_x, best, hover_cols, numeric, customdata)


def plot_speedup_vs_ratio(df: pd.DataFrame, ratio: str = "collective_to_prefetch_ratio",
                          speedup: str = "prefetch_speedup", color: str | None = None, *,
                          hover: Sequence[str] | None = None,
                          title: str | None = None) -> go.Figure:
    """Prefetch speedup against the ratio of collective time to prefetch time.

    PRESERVE finds the gain largest when the all-reduce takes about as long as prefetching the
    next operators' data (ratio near 1); dotted lines mark ratio 1 and speedup 1.

    Args:
        df: one row per configuration.
        ratio, speedup: the two columns.
        color: column coloring the points (e.g. ``"model"`` or ``"batch"``).
        hover: columns shown on hover (default: every column that is not a metric).
        title: figure title.

    Returns:
        A plotly Figure with one marker trace ("configurations", or one per color value).
    """
    import plotly.graph_objects as go

    info = _get_speedup_vs_ratio_info(df, ratio, speedup, color=color, hover=hover)
    xt, yt = axis_label(ratio), axis_label(speedup)
    tmpl = _hover_template(info.hover_columns, info.hover_numeric,
                           [f"{xt}: %{{x:.4g}}", f"{yt}: %{{y:.4g}}"])
    fig = go.Figure()
    if info.color is None or info.color_continuous:
        marker: dict[str, Any] = {"size": 8, "opacity": 0.8, "color": PALETTE[0]}
        if info.color_continuous:
            marker.update(color=info.color, colorscale="Viridis", showscale=True,
                          colorbar={"title": {"text": axis_label(color or "")}})
        fig.add_trace(go.Scatter(x=info.ratio, y=info.speedup, mode="markers",
                                 name="configurations", marker=marker,
                                 customdata=info.customdata, hovertemplate=tmpl))
    else:
        for i, v in enumerate(dict.fromkeys(info.color.tolist())):
            sel = info.color == v
            fig.add_trace(go.Scatter(
                x=info.ratio[sel], y=info.speedup[sel], mode="markers", name=str(v),
                marker={"size": 8, "opacity": 0.8, "color": PALETTE[i % len(PALETTE)]},
                customdata=info.customdata[sel], hovertemplate=tmpl))
    fig.add_hline(y=1.0, line={"color": "#7f7f7f", "dash": "dot"})
    fig.add_vline(x=1.0, line={"color": "#7f7f7f", "dash": "dot"})  # shapes: data coordinates
    if info.best_index >= 0:
        # annotations on a log axis take log10 of the position
        fig.add_annotation(x=np.log10(info.ratio[info.best_index]) if info.log_x
                           else info.ratio[info.best_index], y=info.speedup[info.best_index],
                           text=f"max {info.speedup[info.best_index]:.3g}x", showarrow=True,
                           arrowhead=2, ay=-30)
    fig.update_layout(
        template=TEMPLATE, title=title or f"Prefetch speedup against {xt}",
        xaxis={"title": xt, "type": "log" if info.log_x else "linear"},
        yaxis={"title": yt}, legend={"title": {"text": color or ""}})
    return fig
