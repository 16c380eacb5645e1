"""SFT arms: raw_base (base on raw chunks), think_base (base on thought chunks), think_phase3 (phase3
on thought chunks); next-token loss on all tokens. All arms train on the same audited rows.

Metrics are the results record's SFT columns plus thought-token NLL before and after training.
Resumable from checkpoints/sft_<arm>. Output: models/sft_<arm>.

    python -m stages.sft --arm think_base
"""

from __future__ import annotations

import time

from tqdm.auto import tqdm

from thinkmid import ARMS_SFT
from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.data.thoughts import validate_thought_text
from thinkmid.engines.factory import engine_for, pick_device
from thinkmid.io import read_jsonl, write_json
from thinkmid.models.load import load_model, save_model
from thinkmid.track import StageRun
from thinkmid.train.checkpoint import clear_checkpoints, load_latest_checkpoint, save_checkpoint
from thinkmid.train.loop import ThroughputMeter, clip_and_step, min_available_mem_gib, num_sft_batches, sft_batches
from thinkmid.train.losses import causal_lm_loss
from thinkmid.train.optim import make_optimizer, make_scheduler
from thinkmid.train.sft import ARM_SOURCES, encode_rows, mean_nll, repetition_4gram_rate


def load_thought_rows(path: str) -> list[dict]:
    rows = read_jsonl(path, ("text", "original"))
    for i, r in enumerate(rows, start=1):
        validate_thought_text(r["text"], f"{path}:{i}")  # an unclosed <think> is bad input, not data
    return rows


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    p = params.sft
    start_dir, field = ARM_SOURCES[arm]
    train = load_thought_rows("data/thoughts/train.jsonl")
    val = load_thought_rows("data/thoughts/val.jsonl")
    model, tok = load_model(start_dir, dtype=params.base.dtype)
    model.to(pick_device())
    train_ids = encode_rows(tok, [r[field] for r in train], p.seq_len)
    val_ids = encode_rows(tok, [r[field] for r in val], p.seq_len)
    val_raw = encode_rows(tok, [r["original"] for r in val], p.seq_len)
    val_think = encode_rows(tok, [r["text"] for r in val], p.seq_len)
    per_epoch = num_sft_batches(len(train_ids), p.batch_size)
    total = per_epoch * p.epochs
    optimizer = make_optimizer(model, p.lr, p.weight_decay)
    scheduler = make_scheduler(optimizer, p.warmup_steps, total, p.min_lr_ratio)
    ckpt = f"checkpoints/sft_{arm}"
    resumed = load_latest_checkpoint(ckpt, model, optimizer, scheduler)
    step, extra = resumed if resumed else (0, {})
    history = extra.get("history", [])
    nll_before = extra.get("thought_token_nll_before")
    if nll_before is None:
        nll_before = mean_nll(model, tok, val_think, p.batch_size, p.seq_len, thoughts_only=True)
    meter = ThroughputMeter(extra.get("tokens_seen", 0))
    min_available_mem_gib(reset=True)
    with StageRun("sft", params, arm=arm) as tr:
        logged = tr.logged_steps("train_loss")
        model.train()
        bar = tqdm(total=total, initial=step, desc=f"sft/{arm}", unit="step")
        while step < total:
            epoch, start_batch = divmod(step, per_epoch)
            for batch in sft_batches(train_ids, p.seq_len, p.batch_size, params.seed, epoch, tok.pad_token_id,
                                     start_batch=start_batch):  # fmt: skip
                dev = next(model.parameters()).device
                logits = model(input_ids=batch["input_ids"].to(dev), attention_mask=batch["attention_mask"].to(dev)).logits
                loss = causal_lm_loss(logits, batch["labels"].to(dev))
                loss.backward()
                lr = scheduler.get_last_lr()[0]
                gnorm = clip_and_step(model, optimizer, scheduler, p.max_grad_norm, loss=loss, step=step)
                meter.add(int(batch["attention_mask"].sum()))
                m = {"step": step, "train_loss": float(loss.detach()), "grad_norm": gnorm, "lr": lr,
                     "tokens_seen": meter.tokens_seen, "throughput_tok_s": meter.tokens_per_s}  # fmt: skip
                history.append(m)
                if step not in logged:
                    tr.log_metrics(m, step=step)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{m['train_loss']:.3f}")
                if step % p.checkpoint_every == 0 and step < total:
                    save_checkpoint(ckpt, step, model, optimizer, scheduler, extra={
                        "history": history, "thought_token_nll_before": nll_before, "tokens_seen": meter.tokens_seen})
        bar.close()
        val_loss = mean_nll(model, tok, val_ids, p.batch_size, p.seq_len)
        metrics = {
            "arm": arm,
            "val_loss": val_loss,
            "raw_val_loss": mean_nll(model, tok, val_raw, p.batch_size, p.seq_len),
            "selected_metric": val_loss,  # checkpoint selection reads the arm's own val format
            "thought_token_nll_before": nll_before,
            "thought_token_nll_after": mean_nll(model, tok, val_think, p.batch_size, p.seq_len, thoughts_only=True),
            "tokens_seen": meter.tokens_seen,
            "throughput_tok_s": meter.tokens_per_s,
            "min_available_mem_gib": min_available_mem_gib(),
            "steps": step,
        }
        with engine_for(params.engine, model, tok, None, progress=False) as eng:
            metrics["repetition_4gram_rate"] = repetition_4gram_rate(
                eng, tok, val_raw, params.chunks.prefix_tokens, params.chunks.suffix_tokens, params.seed)
        save_model(model, tok, f"models/sft_{arm}")
        metrics["wall_time_s"] = round(time.time() - t0, 2)
        write_json(f"reports/sft/{arm}_steps.json", history)
        tr.write_metrics(f"reports/sft/{arm}.json", metrics)
    clear_checkpoints(ckpt)


if __name__ == "__main__":
    stage_main("sft", run, arms=ARMS_SFT)
