"""What clients send: closed loop at a concurrency, open loop at a Poisson rate, or a trace.

Prompt and output lengths are fixed, drawn uniformly from an integer range, or read from the
trace. ``prefix_hit`` is the share of each prompt already in the prefix cache (not prefilled).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roofline._specfile import printable, read_text
from roofline.exceptions import SpecError

__all__ = ["Lengths", "ServingWorkload", "Requests", "make_requests", "read_trace", "decode_steps"]


@dataclass(frozen=True)
class Lengths:
    """Token lengths: ``low`` when ``high`` is None, else uniform integers in [low, high]."""

    low: int
    high: int | None = None

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if v is None and name == "high":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise SpecError(f"lengths: {name}: must be a positive integer, got {v!r}")
        if self.high is not None and self.high < self.low:
            raise SpecError(f"lengths: high ({self.high}) must be >= low ({self.low})")

    @property
    def mean(self) -> float:
        return float(self.low) if self.high is None else (self.low + self.high) / 2.0

    @property
    def max(self) -> int:
        return int(self.low if self.high is None else self.high)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.high is None:
            return np.full(n, self.low, dtype=np.int64)
        return rng.integers(self.low, self.high + 1, size=n)


@dataclass(frozen=True)
class ServingWorkload:
    """One benchmark: closed loop (``concurrency``), open loop (``rate_rps``) or a trace.

    Exactly one of ``concurrency``, ``rate_rps`` and ``trace`` is set.
    """

    prompt: Lengths = Lengths(1024)
    output: Lengths = Lengths(1024)
    concurrency: int | None = None
    rate_rps: float | None = None
    trace: str | None = None
    num_requests: int | None = None  # default: 10 x concurrency (at least 100), or 1000
    prefix_hit: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        given = [k for k in ("concurrency", "rate_rps", "trace") if getattr(self, k) is not None]
        if len(given) != 1:
            raise SpecError("serving workload: give exactly one of concurrency, rate_rps and trace, got "
                            f"{', '.join(given) or 'none'}")
        c = self.concurrency
        if c is not None and (isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1):
            raise SpecError(f"serving workload: concurrency: must be a positive integer, got {c!r}")
        r = self.rate_rps
        if r is not None and (isinstance(r, bool) or not np.isfinite(r) or r <= 0):
            raise SpecError(f"serving workload: rate_rps: must be a positive number, got {r!r}")
        if not 0.0 <= self.prefix_hit < 1.0:
            raise SpecError(f"serving workload: prefix_hit: must be in [0, 1), got {self.prefix_hit!r}")
        n = self.num_requests
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise SpecError(f"serving workload: num_requests: must be a positive integer, got {n!r}")
        s = self.seed  # numpy's generator raised a ValueError (a traceback) for a negative one
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise SpecError(f"serving workload: seed: must be an integer >= 0, got {s!r}")

    @property
    def requests(self) -> int:
        if self.num_requests is not None:
            return int(self.num_requests)
        return max(10 * int(self.concurrency), 100) if self.concurrency is not None else 1000


@dataclass(frozen=True)
class Requests:
    """Per-request arrays: ``arrival_s`` (NaN in closed loop: set by the simulator), prompt and
    output tokens, and the prompt tokens that must be prefilled (the rest hit the prefix cache)."""

    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    prefill: np.ndarray

    def __len__(self) -> int:
        return len(self.prompt)


#: Bounds of a trace row: arrivals within about three years (float64 keeps microseconds there)
#: and requests of at most 100M tokens (far beyond any context window).
MAX_TRACE_ARRIVAL_S = 1e8
MAX_TRACE_TOKENS = 10**8


def read_trace(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A trace CSV with columns ``arrival_s``, ``prompt_tokens``, ``output_tokens`` (one request a row)."""
    p = Path(path)
    if not p.exists():
        raise SpecError(f"{p}: trace file not found")
    text = read_text(p, "trace CSV")  # a folder, binary or non-UTF-8 content: one line
    cols = ("arrival_s", "prompt_tokens", "output_tokens")
    rows: list[tuple[float, int, int]] = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in cols if c not in (reader.fieldnames or [])]
    if missing:
        raise SpecError(f"{p}: missing column {missing[0]!r}; a trace needs {', '.join(cols)}")
    try:
        for row in reader:
            i = reader.line_num
            if None in row or None in row.values():  # more or fewer fields than the header
                raise SpecError(f"{p}: line {i}: {len(reader.fieldnames)} fields expected, as in the header")
            try:
                a, pr, o = float(row["arrival_s"]), int(row["prompt_tokens"]), int(row["output_tokens"])
            except ValueError:
                raise SpecError(f"{p}: line {i}: arrival_s must be a number and prompt_tokens, output_tokens "
                                f"integers") from None
            if not 0 <= a <= MAX_TRACE_ARRIVAL_S:  # NaN too
                raise SpecError(f"{p}: line {i}: arrival_s: {a:g} is not in "
                                f"[0, {MAX_TRACE_ARRIVAL_S:g}] seconds")
            for name, tokens in (("prompt_tokens", pr), ("output_tokens", o)):
                if not 1 <= tokens <= MAX_TRACE_TOKENS:
                    raise SpecError(f"{p}: line {i}: {name}: {tokens} is not in [1, {MAX_TRACE_TOKENS:,}]")
            rows.append((a, pr, o))
    except csv.Error as e:
        raise SpecError(f"{p}: line {reader.line_num}: not valid CSV ({printable(e)})") from None
    if not rows:
        raise SpecError(f"{p}: the trace has no requests")
    arr = np.array(rows)
    order = np.argsort(arr[:, 0], kind="stable")
    return arr[order, 0], arr[order, 1].astype(np.int64), arr[order, 2].astype(np.int64)


def make_requests(w: ServingWorkload) -> Requests:
    """The requests of ``w``: lengths drawn with ``w.seed``; Poisson arrivals at ``w.rate_rps``."""
    rng = np.random.default_rng(w.seed)
    if w.trace is not None:
        arrival, prompt, output = read_trace(w.trace)
        if w.num_requests is not None:
            arrival, prompt, output = arrival[: w.num_requests], prompt[: w.num_requests], output[: w.num_requests]
    else:
        n = w.requests
        prompt, output = w.prompt.draw(n, rng), w.output.draw(n, rng)
        if w.rate_rps is not None:
            arrival = np.cumsum(rng.exponential(1.0 / w.rate_rps, size=n))
        else:
            arrival = np.full(n, np.nan)
    cached = np.floor(prompt * w.prefix_hit).astype(np.int64)
    prefill = np.maximum(prompt - cached, 1)
    return Requests(arrival, prompt, output, prefill)


def decode_steps(output: np.ndarray | float, tokens_per_step: np.ndarray | float = 1.0) -> np.ndarray:
    """Mean decode steps of a request of ``output`` tokens (a mean over requests): the ``o - 1`` tokens
    after the first, one a step, so over requests of whole lengths the mean is the mean output less
    one, also when that mean is fractional (a length range: its ceiling made the TPOT of outputs
    15-18, mean 16.5, 3.2% high); with speculative decoding (``tokens_per_step`` > 1) a request ends
    on a whole step."""
    rest = np.maximum(np.asarray(output, dtype=float) - 1.0, 0.0)
    tps = np.asarray(tokens_per_step, dtype=float)
    return np.where(tps > 1, np.ceil(rest / np.maximum(tps, 1.0) - 1e-9), rest)
