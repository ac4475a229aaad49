"""Serving: continuous batching, chunked prefill, KV capacity, queueing and SLO goodput.

The stage after ``predict``: a deployment serves a stream of requests, not one static batch.
One module per concept:

- :mod:`~roofline.serving.workload`: closed loop, open loop (Poisson) or trace; lengths;
- :mod:`~roofline.serving.settings`: engine settings per framework, with sources;
- :mod:`~roofline.serving.step_cost`: the time of one mixed step, precomputed per scenario;
- :mod:`~roofline.serving.capacity`: KV-cache capacity;
- :mod:`~roofline.serving.simulator`: the step-level event simulator;
- :mod:`~roofline.serving.analytic`: the vectorized steady-state model (means);
- :mod:`~roofline.serving.metrics`: definitions, percentiles, goodput;
- :mod:`~roofline.serving.overheads`: fitted software overheads;
- :mod:`~roofline.serving.serve`: :func:`serve`, the entry point;
- disaggregated prefill and decode pools: :mod:`~roofline.serving.kv_transfer` (KV bytes and
  links), :mod:`~roofline.serving.disagg_simulator`, :mod:`~roofline.serving.disagg_analytic`,
  :mod:`~roofline.serving.disagg_sizing` (x:y and parallelism search) and
  :mod:`~roofline.serving.disagg` (:func:`serve_disagg`).
"""

from roofline.serving.analytic import steady_state
from roofline.serving.capacity import kv_capacity_tokens
from roofline.serving.disagg import PoolSpec, serve_disagg
from roofline.serving.disagg_sizing import SizingProblem, exhaustive_disagg, size_disagg
from roofline.serving.kv_transfer import KVLink, kv_link, kv_transfer_bytes, kv_transfer_s
from roofline.serving.metrics import DEFINITIONS, trace_metrics
from roofline.serving.overheads import OVERHEADS_FILE, Overheads, load_overheads
from roofline.serving.serve import ServeResult, ServingSetup, serve
from roofline.serving.settings import (
    FRAMEWORKS,
    EngineSettings,
    SpeculativeDecoding,
    engine_defaults,
)
from roofline.serving.simulator import SimulationTrace, simulate
from roofline.serving.step_cost import StepCost, build_step_cost, token_grid
from roofline.serving.workload import Lengths, Requests, ServingWorkload, make_requests, read_trace

__all__ = [
    "DEFINITIONS", "FRAMEWORKS", "OVERHEADS_FILE", "EngineSettings", "KVLink", "Lengths", "Overheads", "PoolSpec",
    "Requests", "ServeResult", "ServingSetup", "ServingWorkload", "SimulationTrace", "SizingProblem",
    "SpeculativeDecoding", "StepCost", "build_step_cost", "engine_defaults", "exhaustive_disagg",
    "kv_capacity_tokens", "kv_link", "kv_transfer_bytes", "kv_transfer_s", "load_overheads", "make_requests",
    "read_trace", "serve", "serve_disagg", "simulate", "size_disagg", "steady_state", "token_grid", "trace_metrics",
]
