"""Shared helpers for the speed benchmarks: a random Qwen3-0.6B-shaped model, timing, JSON lines."""

from __future__ import annotations

import datetime
import json
import os
import time

import torch

H100_BF16_DENSE = 989e12  # FLOP/s, the datasheet figure MFU is quoted against


# Layer shapes of the random Qwen3 models the benchmarks build (no hub needed).
QWEN3_06B = dict(
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
)
QWEN3_TINY = dict(  # CPU smoke size
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)


def random_qwen3(shape: dict, device, seed: int = 0, **config):
    """A random-init, tied-embedding Qwen3 (sdpa attention) of `shape` plus `config`, built on `device`
    after seeding torch with `seed`, in the default dtype."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen3Config(**shape, tie_word_embeddings=True, attn_implementation="sdpa", **config)
    with torch.device(device):
        return Qwen3ForCausalLM(cfg)


def qwen3_06b(device="cuda", dtype=torch.bfloat16, layers: int = 28, vocab: int = 151936, seed: int = 0):
    shape = dict(QWEN3_06B, num_hidden_layers=layers)
    model = random_qwen3(
        shape,
        device,
        seed,
        vocab_size=vocab,
        max_position_embeddings=4096,
        rope_theta=1e6,
        eos_token_id=151643,
        pad_token_id=151643,
    )
    return model.to(dtype).eval()


class FakeTok:
    """Enough of a tokenizer for the engine: ids in, ids out."""

    pad_token_id = eos_token_id = 151643

    def decode(self, ids, skip_special_tokens=False):
        return ""


def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeat: int = 3, warmup: int = 1) -> float:
    """Median wall seconds of fn() (synchronised), after warmup calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def copy_bandwidth() -> float:
    """Device-to-device copy bandwidth (bytes read + written per second)."""
    if not torch.cuda.is_available():
        return 0.0
    a = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    t = timed(lambda: b.copy_(a), repeat=5)
    return 2 * a.numel() / t


def stamp(**fields) -> dict:
    """A benchmark row: the device and the date, then `fields`."""
    return {"device": device_name(), "date": datetime.date.today().isoformat(), **fields}


def write_row(row: dict, out: str | os.PathLike | None, shown: dict | None = None) -> None:
    """The one JSON-lines writer of the benchmarks: print `shown` (default: the row), append the row
    to `out` when given."""
    print(json.dumps(row if shown is None else shown), flush=True)
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def emit(**fields):
    """One stamped row, printed and appended to $BENCH_OUT when set."""
    write_row(stamp(**fields), os.environ.get("BENCH_OUT"))


def profile_top(name: str, fn, steps: int = 3, rows: int = 25) -> None:
    """Print (and save under $OUT, if set) the kernels that take the most GPU time over `steps` calls."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    sync()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            fn()
        sync()
    table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=rows, max_name_column_width=70)
    print(f"== profile {name} ({steps} calls)\n{table}", flush=True)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, f"profile-{name.replace('+', '_')}.txt"), "w") as f:
            f.write(table)
