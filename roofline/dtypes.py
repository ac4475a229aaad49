"""Number formats: bits per element (block scales included) and the matrix unit a GEMM runs on.

Every fact about a data type lives here; the workload, the operator graph, memory sizing and
timing ask this module instead of keeping their own tables.

Block-scaled formats store one scale per block of elements, and the scales are read and held
like the values, so they count in memory traffic and capacity:

- NVFP4: E2M1 values, one FP8 (E4M3) scale per 16 elements: 4 + 8/16 = 4.5 bits.
- MXFP4: E2M1 values, one E8M0 scale per 32 elements (OCP MX v1.0): 4 + 8/32 = 4.25 bits.
- MXFP6 / MXFP8: E3M2 (or E2M3) / E4M3 values, one E8M0 scale per 32: 6.25 / 8.25 bits.

A GEMM multiplies a weight tile by an activation tile on one kind of matrix unit. The unit is
that of the wider operand (:func:`gemm_unit`): a weight-only format (int4, MXFP4 weights with
bf16 activations, as gpt-oss runs on H100) is dequantised to the activation dtype and runs at
its peak; W4A4 (both operands FP4) runs on the FP4 unit; W4A8 runs on the FP8 unit.
"""

from __future__ import annotations

from dataclasses import dataclass

from roofline.exceptions import SpecError

__all__ = ["DType", "DTYPES", "PEAK_UNITS", "bytes_per_element", "gemm_unit", "attention_unit",
           "peak_unit_for", "dtype", "block_scaled"]


@dataclass(frozen=True)
class DType:
    """One number format: value bits, block scales and the matrix unit it runs on."""

    name: str
    value_bits: int
    unit: str  # the ``compute.peak_tflops`` key of the matrix unit for this format
    block_elements: int = 0  # elements sharing one scale (0: no block scale)
    scale_bits: int = 0
    description: str = ""

    @property
    def bits_per_element(self) -> float:
        """Storage bits per element, the block scale's share included."""
        scale = self.scale_bits / self.block_elements if self.block_elements else 0.0
        return self.value_bits + scale

    @property
    def bytes_per_element(self) -> float:
        return self.bits_per_element / 8.0


#: Matrix-unit keys a device may list under ``compute.peak_tflops`` (dense peaks).
PEAK_UNITS = ("bf16", "fp16", "fp8", "int8", "int4", "fp6", "fp4")

_FORMATS = (
    DType("fp32", 32, "fp32", description="IEEE single (collective reductions only)"),
    DType("bf16", 16, "bf16", description="bfloat16"),
    DType("fp16", 16, "fp16", description="IEEE half"),
    DType("fp8", 8, "fp8", description="E4M3 with a per-tensor or per-channel scale (negligible bytes)"),
    DType("mxfp8", 8, "fp8", 32, 8, "OCP MXFP8: E4M3, one E8M0 scale per 32 elements"),
    DType("int8", 8, "int8", description="int8 with per-channel scales (negligible bytes)"),
    DType("mxfp6", 6, "fp6", 32, 8, "OCP MXFP6: E3M2/E2M3, one E8M0 scale per 32 elements"),
    DType("nvfp4", 4, "fp4", 16, 8, "NVIDIA NVFP4: E2M1, one FP8 E4M3 scale per 16 elements"),
    DType("mxfp4", 4, "fp4", 32, 8, "OCP MXFP4: E2M1, one E8M0 scale per 32 elements"),
    DType("int4", 4, "int4", description="int4 weight-only (AWQ/GPTQ group scales not counted)"),
)
#: Every format by name.
DTYPES: dict[str, DType] = {d.name: d for d in _FORMATS}

#: Units that stand in for each other when a device lists only one of them.
_ALIASES = {"bf16": ("fp16",), "fp16": ("bf16",)}
#: Attention runs its matmuls at most on the FP8 unit: FP4 KV caches are dequantised to FP8
#: (TensorRT-LLM's NVFP4 KV cache) and no attention kernel uses FP4 tensor cores.
_ATTENTION_MAX = "fp8"


def dtype(name: str) -> DType:
    """The format called ``name``; SpecError listing the known ones otherwise."""
    try:
        return DTYPES[name]
    except KeyError:
        raise SpecError(f"unknown data type {name!r}; known: {', '.join(DTYPES)}") from None


def bytes_per_element(name: str) -> float:
    """Storage bytes per element of ``name``, block scales included (NVFP4: 0.5625)."""
    return dtype(name).bytes_per_element


def block_scaled(name: str) -> bool:
    """True for block-scaled formats (NVFP4, MX): as a GEMM's activation, each block's scale is
    computed from the 16-bit values at run time, by a quantize kernel of its own before the GEMM
    (TensorRT-LLM ``fp4_quantize``, vLLM ``scaled_fp4_quant`` for NVFP4; MX taken alike; see
    roofline.graph.layers)."""
    return dtype(name).block_elements > 0


def gemm_unit(weight: str, activation: str) -> str:
    """The matrix unit a GEMM of ``weight`` x ``activation`` operands runs on.

    The narrower operand is converted to the wider one's format (weight-only quantisation
    dequantises weights to the activation dtype); on a tie the activation's unit wins.
    """
    w, a = dtype(weight), dtype(activation)
    return w.unit if w.value_bits > a.value_bits else a.unit


def attention_unit(activation: str) -> str:
    """The matrix unit of attention's QK^T and PV: FP8 with floating-point activations of 8 bits
    or fewer (FP8 attention, also under FP4 GEMMs), bf16 otherwise (int8 activations included:
    attention stays in 16 bit in W8A8 int8 serving)."""
    a = dtype(activation)
    return _ATTENTION_MAX if a.value_bits <= 8 and a.unit not in ("int8", "int4") else "bf16"


def peak_unit_for(unit: str, available: tuple[str, ...] | list[str] | dict[str, object]) -> str | None:
    """The key of ``available`` peaks that serves ``unit`` (bf16 and fp16 stand in for each
    other), or None when the device has no such unit."""
    if unit in available:
        return unit
    for alias in _ALIASES.get(unit, ()):
        if alias in available:
            return alias
    return None
