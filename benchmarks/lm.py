"""Language-model scale: the metric set vs the one product every exact method pays, and measure() vs a bare forward.

Part 1: C = 50,257 classes, d = 768, n token features (float32 on CPU; bfloat16 and 1,000,000 on a
GPU): ``collapse_metrics`` (present classes, with the GPT-2 head W) against the single product of the
features with [W; class means] (C_present + C rows), and the peak memory beyond the features.
Part 2: ``nclab.measure`` on a random-init GPT-2-small-shaped model (12 layers, d = 768) over 2,048
tokens against the model's bare ``inference_mode`` forward over the same batches.

Run: ``python benchmarks/lm.py [--n 50000] [--tokens 2048] [--repeat 3]``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import torch


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _best(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def metric_set(n: int, repeat: int, device: str) -> dict:
    from nclab.metrics import collapse_metrics

    C, d = 50257, 768
    g = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    # Zipf-like token labels, as in text: most of the vocabulary is absent
    p = 1.0 / torch.arange(1, C + 1, dtype=torch.float64)
    y = torch.multinomial(p / p.sum(), n, replacement=True, generator=g).to(device)
    W = (torch.randn(C, d, generator=g) * 0.02).to(device, dtype)
    H = (torch.randn(n, d, generator=g) + 0.0).to(device, dtype)
    Cp = int(torch.unique(y).numel())
    means = torch.randn(Cp, d, generator=g).to(device, dtype)
    rows = torch.cat([W[torch.unique(y)], means])

    def product():
        out = H @ rows.T
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    def metrics():
        out = collapse_metrics(H, y, weights=W, num_classes=C, classes="present")
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    # the metric set first: the product's own (n, 2 C_present) output would set the process's peak RSS
    rss0 = _peak_rss_mb()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t_met = _best(metrics, repeat)
    extra = (torch.cuda.max_memory_allocated() - base) / 2**20 if device == "cuda" else _peak_rss_mb() - rss0
    t_prod = _best(product, repeat)
    return {"n": n, "C": C, "d": d, "present": Cp, "dtype": str(dtype), "product_s": t_prod, "metrics_s": t_met,
            "ratio": t_met / t_prod, "peak_extra_mb": extra,
            "peak_extra_note": "CUDA allocator peak" if device == "cuda" else "growth of the process's peak RSS (upper bound)"}


def lm(tokens: int, repeat: int, device: str) -> dict:
    import transformers

    from nclab.measure import measure

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024)
    model = transformers.GPT2LMHeadModel(cfg).to(device).eval()
    g = torch.Generator().manual_seed(0)
    T = 512
    batches = []
    for _ in range(tokens // T):
        ids = torch.randint(0, cfg.vocab_size, (1, T), generator=g).to(device)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids})

    def bare():
        with torch.inference_mode():
            for b in batches:
                model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        if device == "cuda":
            torch.cuda.synchronize()

    def measured():
        measure(model, batches)
        if device == "cuda":
            torch.cuda.synchronize()

    bare()  # warm-up
    t_bare = _best(bare, repeat)
    t_meas = _best(measured, repeat)
    return {"tokens": tokens, "layers": 12, "d": 768, "forward_s": t_bare, "measure_s": t_meas, "ratio": t_meas / t_bare}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--part", choices=["all", "metrics", "lm"], default="all")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = args.n or (1_000_000 if device == "cuda" else 50_000)
    out = {"device": device, "threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    if args.part in ("all", "metrics"):
        out["metric_set"] = metric_set(n, args.repeat, device)
    if args.part in ("all", "lm"):
        out["measure_lm"] = lm(args.tokens, args.repeat, device)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
