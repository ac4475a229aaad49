"""The operator graph: per-device operator tables of one forward pass per phase, and the memory
footprint of one device.

- :mod:`roofline.graph.table`: the operator table (:class:`OpTable`, :class:`Segment`);
- :mod:`roofline.graph.attention_ops`: the work of one attention operator (:func:`attention_work`);
- :mod:`roofline.graph.layers`: the layer builders (:func:`build_phase`, :func:`decode_kv_range`);
- :mod:`roofline.graph.footprint`: weights, KV cache and activations per device
  (:func:`memory_per_device`, :class:`MemoryReport`).
"""

from roofline.graph.attention_ops import AttentionWork, attention_work
from roofline.graph.footprint import (
    PREFILL_CHUNK_TOKENS,
    MemoryReport,
    memory_footprint,
    memory_per_device,
    weight_params_by_class,
    weight_params_per_device,
)
from roofline.graph.layers import build_phase, decode_kv_range
from roofline.graph.table import (  # _Op, _to_table: tests build small tables by hand
    COLLECTIVE_KINDS,
    OP_KINDS,
    OpTable,
    Segment,
    _Op,  # noqa: F401
    _to_table,  # noqa: F401
)

__all__ = ["OpTable", "Segment", "AttentionWork", "attention_work", "build_phase", "decode_kv_range", "weight_params_per_device",
           "weight_params_by_class", "memory_per_device", "memory_footprint", "MemoryReport",
           "PREFILL_CHUNK_TOKENS", "COLLECTIVE_KINDS", "OP_KINDS"]
