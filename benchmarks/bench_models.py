"""Speed of one prediction per attention kind, where the exact TPOT mean has breakpoints (a sliding
window, top-k, chunk boundaries) inside the decode range. Prints figures; asserts nothing.

Run: python benchmarks/bench_models.py
"""

from __future__ import annotations

from bench_predict import _best_of  # the same best-of-repeats timing loop

import roofline

CASES = [
    ("llama-3-70b", "full attention (no breakpoint)", 4096, 4096),
    ("gpt-oss-120b", "sliding window 128 inside the range", 64, 4096),
    ("deepseek-v3.2", "DSA top-k 2048 inside the range", 1024, 4096),
    ("qwen3-next-80b-a3b", "Gated DeltaNet + full attention", 4096, 4096),
    ("llama-4-scout-17b-16e", "chunks of 8192: 12 boundaries", 1024, 100_000),
]


def main() -> None:
    hw = roofline.load_hardware("h200-sxm")
    print("one prediction on 8x H200 (fp8, batch 8), operator tables cached:")
    for name, what, input_len, output_len in CASES:
        model = roofline.load_model(name)
        kwargs = dict(tp=8, batch=8, input_len=input_len, output_len=output_len, dtype="fp8", check_memory=False)
        roofline.predict(model, hw, **kwargs)
        seconds = _best_of(lambda model=model, kwargs=kwargs: roofline.predict(model, hw, **kwargs), repeat=5, number=5)
        print(f"  {name:24s} {what:38s} {input_len:>6d} in / {output_len:>7d} out  {seconds * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
