"""Attention variants: which cached tokens a query attends, what the cache keeps, and the
shapes of the non-softmax token mixers (Gated DeltaNet) and of DeepSeek's sparse-attention indexer.

A layer's attention ``kind`` is one of :data:`ATTENTION_KINDS`:

- ``full``: every earlier token (MHA, GQA, MQA or MLA, per the model's heads and ``mla`` block);
- ``sliding``: the last ``window`` tokens (Mistral, Gemma local layers, gpt-oss); the cache keeps
  only the window;
- ``chunked``: the tokens of the query's own chunk of ``chunk`` tokens (Llama 4's local layers);
  the cache keeps one chunk;
- ``block_sparse``: the last ``window`` tokens plus every ``stride``-th block before them
  (Phi-3-small); the cache keeps everything;
- ``sparse``: DeepSeek sparse attention (DeepSeek-V3.2, GLM-5): a lightning indexer scores every
  cached token with its own FP8 keys, then MLA attends over the ``topk`` best; the cache keeps
  everything (the latent and the indexer keys);
- ``linear``: Gated DeltaNet (Qwen3-Next, Qwen3.5): a recurrent state of constant size per
  sequence replaces the KV cache, FLOPs are linear in the tokens.

In decode, a windowed pattern makes the attended length ``min(L, window)`` plus a fraction of
the rest: the step cost is piecewise affine in the KV length ``L`` with a kink at the window;
a chunked one attends ``L - chunk * floor((L - 1) / chunk)`` tokens, affine within a chunk. The
timing records those breakpoints so that the exact mean over decode steps sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import inf

__all__ = ["ATTENTION_KINDS", "SOFTMAX_KINDS", "AttendPattern", "LinearAttentionSpec", "SparseIndexerSpec",
           "causal_pairs", "STATE_BYTES", "INDEXER_KEY_BYTES_PER_DIM"]

ATTENTION_KINDS = ("full", "sliding", "chunked", "block_sparse", "sparse", "linear")
#: kinds with a softmax over cached keys (a KV cache that grows with the context)
SOFTMAX_KINDS = ("full", "sliding", "chunked", "block_sparse", "sparse")

#: Bytes per element of the Gated DeltaNet recurrent and convolution states: vLLM and SGLang keep
#: them in the model dtype (bf16; vLLM ``mamba_ssm_cache_dtype: auto``) whatever the KV-cache dtype.
STATE_BYTES = 2.0

#: DeepSeek-V3.2 indexer keys: one FP8 byte per dimension plus one fp32 scale per 128 dimensions
#: (vLLM/SGLang cache 128 + 4 = 132 bytes per token and layer for index_head_dim 128).
INDEXER_KEY_BYTES_PER_DIM = 1.0 + 4.0 / 128


@dataclass(frozen=True)
class AttendPattern:
    """Which of the ``L`` cached tokens one query attends, and how many tokens the cache keeps.

    ``window``: tokens attended in full (inf: all); ``beyond``: the fraction of the older tokens
    attended as well (block-sparse strides); ``chunk``: attention restarts every ``chunk`` tokens
    (0: never); ``cache_window``: tokens the KV cache keeps per sequence (inf: all).
    """

    window: float = inf
    beyond: float = 0.0
    chunk: int = 0
    cache_window: float = inf

    @property
    def is_full(self) -> bool:
        return self.window == inf and self.chunk == 0

    def attended(self, kv_len: int) -> float:
        """Tokens the query at KV length ``kv_len`` (itself included) attends."""
        if self.chunk:
            return kv_len - self.chunk * ((kv_len - 1) // self.chunk)
        near = min(kv_len, self.window)
        return near + self.beyond * (kv_len - near)

    def cached(self, context_len: int) -> float:
        """Tokens the cache keeps for a sequence of ``context_len`` tokens."""
        return min(context_len, self.cache_window)

    def prefill_pairs(self, seq: int) -> float:
        """Query-key pairs of a causal prefill of ``seq`` tokens (``sum_p attended(p)``)."""
        if self.chunk:
            full, rest = divmod(seq, self.chunk)
            return full * causal_pairs(self.chunk) + causal_pairs(rest)
        if seq <= self.window:
            return causal_pairs(seq)
        w = self.window
        older = causal_pairs(seq - w)  # sum over p > w of (p - w)
        return causal_pairs(w) + (seq - w) * w + self.beyond * older


def causal_pairs(seq: int) -> float:
    """``seq * (seq + 1) / 2``: the query-key pairs of causal attention over ``seq`` tokens."""
    return seq * (seq + 1) / 2.0


@dataclass(frozen=True)
class LinearAttentionSpec:
    """Gated DeltaNet (Yang et al. 2024, "Gated Delta Networks"), as in Qwen3-Next and Qwen3.5.

    Per layer: ``in_proj`` makes q, k (``num_key_heads * key_head_dim`` each), v and the output
    gate z (``num_value_heads * value_head_dim`` each) and the per-head beta and decay a; a
    causal depthwise convolution of ``conv_kernel`` taps runs over q, k and v; the recurrence
    keeps a ``key_head_dim x value_head_dim`` state per value head; a gated RMSNorm and
    ``out_proj`` close the layer.
    """

    num_key_heads: int
    num_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int = 4
    chunk_size: int = 64  # the chunked (WY) prefill algorithm's chunk (fla chunk_gated_delta_rule)

    @property
    def key_dim(self) -> int:
        return self.num_key_heads * self.key_head_dim

    @property
    def value_dim(self) -> int:
        return self.num_value_heads * self.value_head_dim

    @property
    def conv_dim(self) -> int:
        return 2 * self.key_dim + self.value_dim

    def params(self, hidden: int) -> int:
        """in_proj (q, k, v, z, beta, a), conv1d (no bias), dt_bias, A_log, gated norm, out_proj."""
        v = self.num_value_heads
        in_proj = hidden * (2 * self.key_dim + 2 * self.value_dim + 2 * v)
        return in_proj + self.conv_dim * self.conv_kernel + 2 * v + self.value_head_dim + self.value_dim * hidden

    def recurrent_state_elements(self) -> int:
        """One sequence's recurrent state in one layer: a dk x dv matrix per value head."""
        return self.num_value_heads * self.key_head_dim * self.value_head_dim

    def conv_state_elements(self) -> int:
        """One sequence's convolution state in one layer: the last ``conv_kernel - 1`` inputs."""
        return (self.conv_kernel - 1) * self.conv_dim

    def state_bytes(self) -> float:
        """Bytes of one sequence's state in one layer (constant in the context length)."""
        return (self.recurrent_state_elements() + self.conv_state_elements()) * STATE_BYTES

    def decode_flops_per_head(self) -> float:
        """FLOPs per token and value head of the recurrent step: decay the state (dk*dv), read it
        with k (2 dk dv), rank-1 delta update (2 dk dv), read it with q (2 dk dv)."""
        return 7.0 * self.key_head_dim * self.value_head_dim

    def prefill_flops_per_head(self) -> float:
        """FLOPs per token and value head of the chunked algorithm (an estimate: the decode
        step's state work, 7 dk dv, plus the causal intra-chunk products, chunk/2 keys of
        2 (dk + dv) each)."""
        return self.decode_flops_per_head() + self.chunk_size * (self.key_head_dim + self.value_head_dim)


@dataclass(frozen=True)
class SparseIndexerSpec:
    """DeepSeek sparse attention's lightning indexer (DeepSeek-V3.2-Exp; GLM-5).

    The indexer projects the query latent to ``num_heads`` heads of ``head_dim`` (wq_b), the
    hidden state to one key of ``head_dim`` (wk, with a LayerNorm) and to per-head weights
    (weights_proj); it scores every cached token by ``sum_h w_h relu(q_h . k)`` in FP8 and keeps
    the ``topk`` best, over which MLA attends.
    """

    num_heads: int
    head_dim: int
    topk: int

    def params(self, hidden: int, q_input: int) -> int:
        """wq_b (from the ``q_input``-wide query latent), wk, k_norm (LayerNorm weight and bias),
        weights_proj."""
        return (q_input * self.num_heads * self.head_dim + hidden * self.head_dim + 2 * self.head_dim
                + hidden * self.num_heads)

    def key_bytes_per_token(self) -> float:
        """Indexer-cache bytes per token and layer (FP8 keys with their scales)."""
        return self.head_dim * INDEXER_KEY_BYTES_PER_DIM

    def score_flops_per_key(self) -> float:
        """FLOPs per (query, cached key): the dot products of every head, ReLU, weighted sum."""
        return self.num_heads * (2.0 * self.head_dim + 3.0)
