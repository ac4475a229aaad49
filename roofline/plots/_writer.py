"""Writing figures: HTML always, PNG (and other images) through kaleido when a Chrome is found.

PNG export goes through kaleido (>= 1.0), which drives a Chrome or Chromium. The browser is the one
named by the ``BROWSER_PATH`` environment variable when it is set; otherwise the one kaleido's
``choreographer`` finds (a copy fetched by ``plotly_get_chrome``, or ``chromium`` / ``google-chrome``
on ``PATH``); otherwise Debian's ``/usr/lib/chromium/chromium-headless-shell``
(``apt-get install -y --no-install-recommends chromium-headless-shell``, works offline). When none
is found, or the export fails, the HTML is still written and a one-line :class:`PNGExportWarning`
says how to enable PNG.

kaleido and choreographer are imported inside the functions that use them.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roofline._runfiles import atomic_write, replacing

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["DEBIAN_HEADLESS_SHELL", "ENABLE_PNG_HINT", "IMAGE_FORMATS", "FigureWriter",
           "PNGExportWarning", "figure_targets", "find_browser", "save_figure"]


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

    def targets(self, path_stem: str | os.PathLike[str]) -> list[Path]:
        """Every file :meth:`write` may write for this stem (HTML first), to check before
        writing that none of them would overwrite a user's file."""
        stem = Path(path_stem)
        return [stem.with_name(f"{stem.name}.{fmt}") for fmt in ("html", *self.image_formats)]

    def write(self, fig: go.Figure, path_stem: str | os.PathLike[str]) -> list[Path]:
        """Write ``fig`` to ``<path_stem>.html`` and the writer's image formats.

        Each file is written under a temporary name and renamed into place, so a killed run
        leaves the old file or the new one, never a truncated one.

        Args:
            fig: a plotly Figure.
            path_stem: output path without extension; parent folders are created.

        Returns:
            The files written, HTML first.
        """
        stem = Path(path_stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        html = stem.with_name(stem.name + ".html")
        with replacing(html) as tmp:
            fig.write_html(tmp, include_plotlyjs=True, full_html=True, config={"displaylogo": False})
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
            atomic_write(target, data)
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


def figure_targets(path_stem: str | os.PathLike[str], *, formats: Sequence[str] = ("html", "png")) -> list[Path]:
    """Every file :func:`save_figure` (or a :class:`FigureWriter` with these formats) may write
    for this stem: check them all before writing, PNG as well as HTML."""
    return FigureWriter(formats=formats).targets(path_stem)
