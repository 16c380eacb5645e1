"""SFT training throughput and MFU (6N FLOPs per token) at seq 2048 on a random Qwen3-0.6B shape.

baseline: HF forward with labels (full logits + HF loss), backward, fused AdamW.
ours: `thinkmid.train.fast.causal_lm_loss_fast` (chunked fused linear + CE), optionally with every
decoder layer torch.compile'd.
Run: PYTHONPATH=. python benchmarks/bench_train.py [--batch 8] [--no-compile]
     PYTHONPATH=. python benchmarks/bench_train.py --sweep  # larger batches, whole-model compile
     (--tiny: a 2-layer, 1k-vocab model at seq 128, runs on the CPU as a smoke test)
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import H100_BF16_DENSE, emit, qwen3_06b, timed
from thinkmid.train.fast import _ce_chunk, causal_lm_loss_fast, causal_lm_loss_fused
from thinkmid.train.optim import make_optimizer

SEQ = 2048
DEV = "cuda" if torch.cuda.is_available() else "cpu"
TINY = {}


def new_model():
    if TINY:
        from benchmarks.common import qwen3_06b as q

        return q(device=DEV, dtype=torch.float32, layers=2).train()
    return qwen3_06b().train()


def bench(name, model, batch, loss_fn, steps=5):
    opt = make_optimizer(model, lr=1e-5)
    vocab = model.config.vocab_size
    ids = torch.randint(min(1000, vocab // 2), vocab - 1, (batch, SEQ), device=DEV)

    def step():
        loss = loss_fn(model, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    step()
    if DEV == "cuda":
        torch.cuda.synchronize()
    first = time.perf_counter() - t0
    t = timed(step, repeat=steps, warmup=1)
    n = sum(p.numel() for p in model.parameters())
    tps = batch * SEQ / t
    mfu = 6 * n * tps / H100_BF16_DENSE
    emit(
        figure="train_sft",
        variant=name,
        seq=SEQ,
        batch=batch,
        tok_s=round(tps),
        mfu_6n=round(mfu, 4),
        step_s=round(t, 3),
        first_step_s=round(first, 1),
        params=n,
        peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 1) if DEV == "cuda" else None,
        mfu_peak_flops=H100_BF16_DENSE,
    )
    opt = None  # free its state before the next variant (the closure above is done with it)
    if DEV == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return mfu


def hf_loss(model, ids):
    return model(input_ids=ids, labels=ids).loss


CHUNK = {"n": 4096}


def fast_loss(model, ids):
    return causal_lm_loss_fast(model, ids, ids, chunk=CHUNK["n"])


def fused_loss(model, ids):
    return causal_lm_loss_fused(model, ids, ids, chunk=CHUNK["n"], compiled=DEV == "cuda")


def ce_ab():
    """The compiled CE chunk kernel against the eager formula on the GPU: loss, gradient, time."""
    g = torch.Generator(device=DEV).manual_seed(0)
    x = (torch.randn(4096, 151936, device=DEV, generator=g) * 4).to(torch.bfloat16)
    t = torch.randint(0, 151936, (4096,), device=DEV, generator=g)
    v = torch.rand(4096, device=DEV, generator=g) > 0.1
    n = v.sum().float()
    comp = torch.compile(_ce_chunk, dynamic=False)
    (l1, g1), (l2, g2) = _ce_chunk(x, t, v, n), comp(x, t, v, n)
    te, tc = timed(lambda: _ce_chunk(x, t, v, n), repeat=10), timed(lambda: comp(x, t, v, n), repeat=10)
    emit(
        figure="ce_chunk_ab",
        rows=4096,
        loss_eager=l1.item(),
        loss_compiled=l2.item(),
        loss_rel_diff=abs(l1.item() - l2.item()) / abs(l1.item()),
        grad_max_abs_diff=(g1.float() - g2.float()).abs().max().item(),
        grad_max_abs=g1.float().abs().max().item(),
        eager_ms=round(te * 1e3, 2),
        compiled_ms=round(tc * 1e3, 2),
    )


def train_step(model, loss_fn, batch):
    """One optimizer step on a fixed random batch, as a closure (for the profiler)."""
    opt = make_optimizer(model, lr=1e-5)
    ids = torch.randint(1000, 150000, (batch, SEQ), device=DEV)

    def step():
        loss_fn(model, ids).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def experiments(batches):
    """CE kernel A/B, then per batch: compiled HF layers vs the fused (qkv, gate/up) layers; profiles."""
    from benchmarks.common import profile_top

    torch.backends.cuda.matmul.allow_tf32 = True
    ce_ab()
    for b in batches:
        for name, fn in (("fused_ce+compiled_hf_layers", fast_loss), ("fused_ce+fused_compiled_layers", fused_loss)):
            model = new_model()
            model.config.use_cache = False
            if fn is fast_loss:
                for layer in model.model.layers:
                    layer.compile(dynamic=False)
            bench(name, model, b, fn)
            if b == batches[0]:
                profile_top(f"train-{name}-b{b}", train_step(model, fn, b), steps=2)
            del model
            torch.cuda.empty_cache()


def profile_fused(batch, rows, cdt):
    """The shipped training path (fused layers) at one batch: step time, then a long kernel table;
    with cdt, inductor's coordinate-descent tuning of its own kernels first."""
    from benchmarks.common import profile_top

    torch.backends.cuda.matmul.allow_tf32 = True
    if cdt:
        torch._inductor.config.coordinate_descent_tuning = True
    model = new_model()
    model.config.use_cache = False
    bench("fused_ce+fused_compiled_layers" + (",coordinate_descent_tuning" if cdt else ""), model, batch, fused_loss)
    profile_top(
        f"train-fused-b{batch}" + ("-cdt" if cdt else ""), train_step(model, fused_loss, batch), steps=2, rows=rows
    )


def final(batches):
    """The table's rows: HF baseline (full logits, eager) at the first batch, then the path SFT ships
    on CUDA (fused compiled layers + chunked CE, `sft_loss_fast`) at each batch."""
    from thinkmid.train.fast import sft_loss_fast

    torch.backends.cuda.matmul.allow_tf32 = True
    model = new_model()
    model.config.use_cache = False
    base = bench("baseline_hf_loss", model, batches[0], hf_loss)
    del model
    torch.cuda.empty_cache()
    for b in batches:
        model = new_model()
        model.config.use_cache = False
        ours = bench("shipped: fused compiled layers + chunked CE", model, b, lambda m, ids: sft_loss_fast(m, ids, ids))
        emit(figure="train_sft_ratio", batch=b, ratio_to_baseline=round(ours / base, 2))
        del model
        torch.cuda.empty_cache()


def attn_mha_micro(batch=16):
    """fwd+bwd of causal attention: GQA (enable_gqa) vs K/V repeated to 16 heads (plain MHA)."""
    import torch.nn.functional as F

    q = torch.randn(batch, 16, SEQ, 128, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(batch, 8, SEQ, 128, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn_like(k, requires_grad=True)
    go = torch.randn_like(q)
    for name in ("gqa", "mha_repeat"):

        def f():
            if name == "gqa":
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            else:
                o = F.scaled_dot_product_attention(
                    q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=True
                )
            o.backward(go)

        emit(figure="attn_gqa_vs_mha", variant=name, batch=batch, ms=round(timed(f, repeat=10) * 1e3, 2))


def attn_micro(batch=16):
    """fwd+bwd of causal GQA SDPA at the training shape, per backend (ms); informs the sweep."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(batch, 16, SEQ, 128, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(batch, 8, SEQ, 128, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn_like(k, requires_grad=True)
    go = torch.randn_like(q)
    flops = 3.5 * 4 * batch * 16 * SEQ * SEQ * 128 / 2  # causal, fwd + bwd (2.5x fwd)
    for name, be in (
        ("default", None),
        ("flash", SDPBackend.FLASH_ATTENTION),
        ("cudnn", SDPBackend.CUDNN_ATTENTION),
        ("efficient", SDPBackend.EFFICIENT_ATTENTION),
    ):

        def f():
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            o.backward(go)

        try:
            if be is None:
                t = timed(f, repeat=5)
            else:
                with sdpa_kernel(be):
                    t = timed(f, repeat=5)
            emit(figure="attn_micro", backend=name, batch=batch, ms=round(t * 1e3, 2), tflops=round(flops / t / 1e12))
        except Exception as e:  # noqa: BLE001 - a backend may not support the shape
            emit(figure="attn_micro", backend=name, error=str(e)[:200])


def sweep2(batches, mode):
    """Compiled layers at larger batches / CE chunk sizes, then (last) a compile mode for the layers."""
    torch.backends.cuda.matmul.allow_tf32 = True
    for b, ch, md in [(b, c, None) for b, c in batches] + ([(batches[0][0], batches[0][1], mode)] if mode else []):
        CHUNK["n"] = ch
        model = new_model()
        model.config.use_cache = False
        for layer in model.model.layers:
            layer.compile(dynamic=False, mode=md)
        bench(
            f"fused_ce_compiled_chunk+compiled_layers,chunk={ch}" + (f",mode={md}" if md else ""), model, b, fast_loss
        )
        del model


def sweep(batches, whole):
    """Fused loss (compiled chunk kernel) with eager layers, compiled layers, and the whole model compiled."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
    if DEV == "cuda" and not TINY:
        attn_micro()
    for name, b in (("fused_ce_compiled_chunk", batches[0]),) + tuple(("+compiled_layers", b) for b in batches):
        model = new_model()
        model.config.use_cache = False
        if name.startswith("+"):
            name = "fused_ce_compiled_chunk+compiled_layers"
            for layer in model.model.layers:
                layer.compile(dynamic=False)
        bench(name, model, b, fast_loss)
        del model
    for b in whole:
        model = new_model()
        model.config.use_cache = False
        model.model.compile(dynamic=False)
        bench("fused_ce_compiled_chunk+compiled_whole_model", model, b, fast_loss)
        del model


def main():
    global SEQ
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--batches", default="8,16")
    ap.add_argument("--whole", default="16", help="batches for the whole-model compile ('' = none)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--sweep2", default="", help="batch:chunk pairs with compiled layers, e.g. 24:8192,16:8192")
    ap.add_argument("--mode", default="", help="torch.compile mode for one more run of the first pair")
    ap.add_argument("--experiments", default="", help="batches for: CE kernel A/B, HF vs fused layers, profiles")
    ap.add_argument("--exp2", type=int, default=0, help="batch for: GQA vs MHA attention")
    ap.add_argument("--profile-fused", type=int, default=0, help="batch: time + long kernel table of the fused path")
    ap.add_argument("--rows", type=int, default=80)
    ap.add_argument("--cdt", action="store_true", help="with --profile-fused: inductor coordinate-descent tuning")
    ap.add_argument("--final", default="", help="batches: HF baseline at the first, the shipped path at each")
    a = ap.parse_args()
    if a.profile_fused:
        return profile_fused(a.profile_fused, a.rows, a.cdt)
    if a.exp2:
        torch.backends.cuda.matmul.allow_tf32 = True
        return attn_mha_micro(a.exp2)
    if a.experiments:
        return experiments([int(x) for x in a.experiments.split(",")])
    if a.tiny:
        TINY["on"] = True
        SEQ = 128
    if a.final:
        return final([int(x) for x in a.final.split(",")])
    if a.sweep2:  # "24:8192,16:8192"
        pairs = [tuple(int(y) for y in x.split(":")) for x in a.sweep2.split(",")]
        return sweep2(pairs, a.mode)
    if a.sweep:
        ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
        return sweep(ints(a.batches), ints(a.whole))
    model = new_model()
    model.config.use_cache = False
    base = bench("baseline_hf_loss", model, a.batch, hf_loss)
    ours = bench("fused_linear_ce", model, a.batch, fast_loss)
    emit(figure="train_sft_ratio", variant="fused_linear_ce", ratio_to_baseline=round(ours / base, 2))
    if not a.no_compile:
        for layer in model.model.layers:
            layer.compile(dynamic=False)
        ours_c = bench("fused_linear_ce+compiled_layers", model, a.batch, fast_loss)
        emit(
            figure="train_sft_ratio",
            variant="fused_linear_ce+compiled_layers",
            ratio_to_baseline=round(ours_c / base, 2),
        )


if __name__ == "__main__":
    main()
