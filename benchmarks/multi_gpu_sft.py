"""SFT on N GPUs vs 1 GPU at the same GLOBAL batch: tokens/s speedup and loss-curve agreement.

A random Qwen3-0.6B-shaped bf16 model (no hub needed) trains on seeded synthetic rows (Zipf-like
token ids, so the loss falls) through the code the sft stage runs: thinkmid.train.dist.Dist
(row sharding, the globally normalised token-mean loss, DDP via accelerate), clip_and_step, AdamW
with the warmup + cosine schedule. Each run writes one JSON (main process only); `--compare` turns
a 1-process and an N-process JSON into the markdown of benchmarks/MULTI_GPU.md.

    export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    PYTHONPATH=. python benchmarks/multi_gpu_sft.py --out one.json
    PYTHONPATH=. accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 \
        benchmarks/multi_gpu_sft.py --out two.json
    PYTHONPATH=. python benchmarks/multi_gpu_sft.py --compare one.json two.json

CPU check of the same path (gloo): add `--cpu` to accelerate launch and `--tiny` to the script.
"""

from __future__ import annotations

import argparse
import json
import os
import time

for _k, _v in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"), ("NVSHMEM_DISABLE_NVLS", "1")):
    os.environ.setdefault(_k, _v)  # NVLink multicast stays off on shared hosts

import torch  # noqa: E402

from benchmarks.common import QWEN3_06B, QWEN3_TINY, random_qwen3  # noqa: E402
from thinkmid.train.dist import Dist  # noqa: E402
from thinkmid.train.loop import clip_and_step, sft_batches  # noqa: E402
from thinkmid.train.optim import make_optimizer, make_scheduler  # noqa: E402


def make_model(tiny: bool, device, seed: int = 0):
    # the same initial weights on every rank and in every run (random_qwen3 seeds torch with `seed`)
    shape = dict(QWEN3_TINY, vocab_size=4096) if tiny else dict(QWEN3_06B, vocab_size=151936)
    model = random_qwen3(
        shape,
        device,
        seed,
        max_position_embeddings=4096,
        rope_theta=1e6,
        eos_token_id=0,
        pad_token_id=0,
        bos_token_id=0,
    )
    return model.to(torch.bfloat16 if not tiny else torch.float32)


def make_rows(n: int, seq: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """Rows of 3/4 to full `seq` tokens, ids drawn from a Zipf-like law over the first 32k ids."""
    g = torch.Generator().manual_seed(seed)
    top = min(vocab - 1, 32768)
    probs = 1.0 / torch.arange(1, top + 1, dtype=torch.float64) ** 1.1
    rows = []
    for _ in range(n):
        length = int(torch.randint(seq * 3 // 4, seq + 1, (1,), generator=g))
        rows.append((torch.multinomial(probs, length, replacement=True, generator=g) + 1).tolist())
    return rows


def train(args) -> None:
    dist = Dist(cpu=args.tiny and not torch.cuda.is_available())
    device = dist.device()
    on_gpu = torch.device(device).type == "cuda"
    model = make_model(args.tiny, device).train()
    vocab = model.config.vocab_size
    rows = make_rows(args.batch * args.steps, args.seq, vocab)
    opt = make_optimizer(model, args.lr, 0.1)
    sched = make_scheduler(opt, 2, args.steps, 0.1)
    model, opt = dist.prepare(model, opt, lm_loss=True)  # the sft stage's path (fused on CUDA)
    losses, times, tokens = [], [], []
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    for step, batch in enumerate(sft_batches(rows, args.seq, args.batch, seed=0, epoch=0, pad_id=0)):
        sync()
        t = time.perf_counter()
        loss, value, n_tok = dist.lm_loss(model, batch)
        loss.backward()
        clip_and_step(model, opt, sched, 1.0, loss=value, step=step, accelerator=dist.accelerator)
        sync()
        times.append(time.perf_counter() - t)
        losses.append(value)
        tokens.append(n_tok)
        if dist.is_main and (step % 5 == 0 or step == args.steps - 1):
            print(f"step {step} loss {value:.4f} {n_tok / times[-1]:.0f} tok/s", flush=True)
    w = args.warmup
    result = {
        "world_size": dist.world_size,
        "device": torch.cuda.get_device_name() if on_gpu else "cpu",
        "model": "tiny" if args.tiny else "qwen3-0.6b-shape bf16",
        "global_batch": args.batch,
        "seq": args.seq,
        "steps": args.steps,
        "timed_steps": args.steps - w,
        "tok_s": sum(tokens[w:]) / sum(times[w:]),
        "step_s_median": sorted(times[w:])[len(times[w:]) // 2],
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None,
        "losses": losses,
        "tokens": tokens,
        "step_s": [round(t, 4) for t in times],
    }
    if dist.is_main:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        print(json.dumps({k: v for k, v in result.items() if k not in ("losses", "tokens")}), flush=True)
    dist.barrier()
    dist.end()


def compare(one_path: str, many_path: str) -> str:
    one, many = json.load(open(one_path)), json.load(open(many_path))
    diffs = [abs(a - b) for a, b in zip(one["losses"], many["losses"])]
    rel = max(d / abs(a) for d, a in zip(diffs, one["losses"]))
    lines = [
        f"device: {many['device']} x{many['world_size']}; model: {many['model']}; global batch {many['global_batch']} "
        f"rows x up to {many['seq']} tokens; {many['steps']} steps ({many['timed_steps']} timed)",
        "",
        "| processes | tokens/s | median step s | peak GPU mem GiB |",
        "| --- | --- | --- | --- |",
    ]
    for r in (one, many):
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "-"
        lines.append(f"| {r['world_size']} | {r['tok_s']:.0f} | {r['step_s_median']:.3f} | {mem} |")
    lines += [
        "",
        f"speedup: {many['tok_s'] / one['tok_s']:.2f}x on {many['world_size']} processes",
        f"tokens per step equal: {one['tokens'] == many['tokens']}",
        f"loss curves: max |diff| {max(diffs):.4f}, max relative {rel:.2e}; first {one['losses'][0]:.4f} / "
        f"{many['losses'][0]:.4f}, last {one['losses'][-1]:.4f} / {many['losses'][-1]:.4f}",
        "",
        "| step | loss, 1 process | loss, N processes |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {i} | {a:.4f} | {b:.4f} |" for i, (a, b) in enumerate(zip(one["losses"], many["losses"]))]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="multi_gpu_sft.json")
    ap.add_argument(
        "--batch",
        type=int,
        default=16,
        help="GLOBAL batch (rows), split over ranks; 32 x 1024 OOMs one H200 (fp32 logits)",
    )
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--tiny", action="store_true", help="a small fp32 model, for a CPU check")
    ap.add_argument("--compare", nargs=2, metavar=("ONE", "MANY"))
    args = ap.parse_args()
    if args.compare:
        print(compare(*args.compare), end="")
    else:
        train(args)


if __name__ == "__main__":
    main()
