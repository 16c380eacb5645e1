"""SFT arms: raw_base (base on raw chunks), think_base (base on thought chunks), think_phase3 (phase3
on thought chunks); next-token loss on all tokens. All arms train on the same audited rows.

Metrics are the results record's SFT columns as the seed computed them: thought_token_nll (per-row mean
over thought segments, tags included, on the trained arm; "4.24" is the raw_base arm), and
repetition_4gram_rate on the first sft.rep_rows val rows of the arm's training field (data, not
samples). Ours stay beside them: thought_token_nll_before/after (tokens inside the tags, pooled,
before = the starting model) and repetition_4gram_rate_samples (sampled continuations). raw_base can
run its own step count and warmup (sft.raw_steps, sft.raw_warmup_steps: the seed's token-matched
657 steps and warmup 64), going on into a second pass over the rows if it needs to.
Resumable from checkpoints/sft_<arm>. Output: models/sft_<arm>.

    python -m stages.sft --arm think_base
    accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 -m stages.sft --arm think_base

Under `accelerate launch` each rank trains on its rows of every global batch (`sft.batch_size` stays
the global batch, so the loss curve is the one-process curve); the main process alone writes metrics,
MLflow, checkpoints and the model (thinkmid/train/dist.py).
"""

from __future__ import annotations

import logging
import time

from tqdm.auto import tqdm

from thinkmid import ARMS_SFT
from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.data.thoughts import validate_thought_text
from thinkmid.io import read_jsonl, write_json
from thinkmid.models.load import load_model, save_model
from thinkmid.train.checkpoint import clear_checkpoints, load_latest_checkpoint, save_checkpoint, saved_run_id
from thinkmid.train.dist import Dist
from thinkmid.train.loop import ThroughputMeter, clip_and_step, min_available_mem_gib, num_sft_batches, sft_batches
from thinkmid.train.optim import make_optimizer, make_scheduler
from thinkmid.train.sft import (
    ARM_SOURCES,
    encode_rows,
    mean_nll,
    repetition_4gram_rate,
    repetition_4gram_rate_data,
    thought_token_nll_seed,
)
from thinkmid.engines.wiring import Part, build, policy


def load_thought_rows(path: str) -> list[dict]:
    rows = read_jsonl(path, ("text", "original"))
    for i, r in enumerate(rows, start=1):
        validate_thought_text(r["text"], f"{path}:{i}")  # an unclosed <think> is bad input, not data
    return rows


log = logging.getLogger(__name__)


def wiring(params: Params, arm: str | None) -> list[Part]:
    """The sampled repetition metric's engine: started on the arm's starting model, then synced with the
    trained weights (a no-op in process; a server engine loads them)."""
    return [policy(ARM_SOURCES[arm][0], trains=True, label=arm)]


def _final_model(dist: Dist, model, start_dir: str, dtype: str):
    """The bare trained model on the main process (None elsewhere); FSDP gathers the full weights."""
    if not dist.is_fsdp:
        return dist.unwrap(model) if dist.is_main else None
    full = dist.state_dict(model)  # a collective: every rank calls it
    if not dist.is_main:
        return None
    bare, _ = load_model(start_dir, dtype=dtype)
    bare.load_state_dict(full)
    return bare.to(dist.device())


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    p = params.sft
    start_dir, field = ARM_SOURCES[arm]
    train = load_thought_rows("data/thoughts/train.jsonl")
    val = load_thought_rows("data/thoughts/val.jsonl")
    dist = Dist()
    model, tok = load_model(start_dir, dtype=params.base.dtype)
    model.to(dist.device())
    train_ids = encode_rows(tok, [r[field] for r in train], p.seq_len, p.append_eos)
    val_ids = encode_rows(tok, [r[field] for r in val], p.seq_len, p.append_eos)
    val_raw = encode_rows(tok, [r["original"] for r in val], p.seq_len, p.append_eos)
    val_think = encode_rows(tok, [r["text"] for r in val], p.seq_len, p.append_eos)
    per_epoch = num_sft_batches(len(train_ids), p.batch_size)
    total, warmup = per_epoch * p.epochs, p.warmup_steps
    if arm == "raw_base":  # the seed matches raw_base's tokens to the think arms' with more steps
        total = p.raw_steps or total
        warmup = p.raw_warmup_steps if p.raw_warmup_steps is not None else warmup
    optimizer = make_optimizer(model, p.lr, p.weight_decay, decay_norms=p.decay_norms)
    scheduler = make_scheduler(optimizer, warmup, total, p.min_lr_ratio, kind=p.lr_schedule)
    ckpt = f"checkpoints/sft_{arm}"
    if dist.is_fsdp:  # checkpoints hold whole tensors; FSDP's are sharded
        log.warning("sft under FSDP: no mid-run checkpoints, a killed run starts over (use DDP to resume)")
    resumed = None if dist.is_fsdp else load_latest_checkpoint(ckpt, model, optimizer, scheduler)
    step, extra = resumed if resumed else (0, {})
    history = extra.get("history", [])
    nll_before = extra.get("thought_token_nll_before")
    if nll_before is None:
        nll_before = mean_nll(model, tok, val_think, p.batch_size, p.seq_len, thoughts_only=True, dist=dist)
    model, optimizer = dist.prepare(model, optimizer, lm_loss=True)  # DDP takes the fused loss path too
    eval_model = model if dist.is_fsdp else dist.unwrap(model)
    meter = ThroughputMeter(extra.get("tokens_seen", 0))
    min_available_mem_gib(reset=True)
    with dist.tracker("sft", params, arm=arm, run_id=saved_run_id(ckpt)) as tr:
        logged = tr.logged_steps("train_loss")
        model.train()
        bar = tqdm(total=total, initial=step, desc=f"sft/{arm}", unit="step", disable=not dist.is_main)
        while step < total:
            epoch, start_batch = divmod(step, per_epoch)
            for batch in sft_batches(train_ids, p.seq_len, p.batch_size, params.seed, epoch, tok.pad_token_id,
                                     start_batch=start_batch):  # fmt: skip
                if step >= total:
                    break
                loss, loss_value, tokens = dist.lm_loss(model, batch)  # this rank's rows; global mean
                loss.backward()
                lr = scheduler.get_last_lr()[0]
                gnorm = clip_and_step(model, optimizer, scheduler, p.max_grad_norm, loss=loss_value, step=step,
                                      accelerator=dist.accelerator)  # fmt: skip
                meter.add(tokens)
                m = {"step": step, "train_loss": loss_value, "grad_norm": gnorm, "lr": lr,
                     "tokens_seen": meter.tokens_seen, "throughput_tok_s": meter.tokens_per_s}  # fmt: skip
                history.append(m)
                if step not in logged:
                    tr.log_metrics(m, step=step)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{m['train_loss']:.3f}")
                if step % p.checkpoint_every == 0 and step < total and dist.is_main and not dist.is_fsdp:
                    save_checkpoint(ckpt, step, model, optimizer, scheduler, extra={
                        "history": history, "thought_token_nll_before": nll_before, "tokens_seen": meter.tokens_seen})
        bar.close()
        val_loss = mean_nll(eval_model, tok, val_ids, p.batch_size, p.seq_len, dist=dist)
        metrics = {
            "arm": arm,
            "val_loss": val_loss,
            "raw_val_loss": mean_nll(eval_model, tok, val_raw, p.batch_size, p.seq_len, dist=dist),
            "selected_metric": val_loss,  # checkpoint selection reads the arm's own val format
            "thought_token_nll_before": nll_before,
            "thought_token_nll_after": mean_nll(eval_model, tok, val_think, p.batch_size, p.seq_len,
                                                thoughts_only=True, dist=dist),  # fmt: skip
            "thought_token_nll": thought_token_nll_seed(eval_model, tok, [r["text"] for r in val], p.seq_len,
                                                        p.batch_size),  # fmt: skip
            "repetition_4gram_rate": repetition_4gram_rate_data(
                [tok.encode(r[field], add_special_tokens=False)[: p.seq_len] for r in val[: p.rep_rows]]),
            "tokens_seen": meter.tokens_seen,
            "throughput_tok_s": meter.tokens_per_s,
            "min_available_mem_gib": min_available_mem_gib(),
            "steps": step,
        }
        final = _final_model(dist, model, start_dir, params.base.dtype)
        if dist.is_main:  # the others wait at the barrier below
            [sampler] = wiring(params, arm)
            with build(sampler, params, final, tok, progress=False) as eng:
                eng.sync(final, tok)  # the metric scores the trained model, not what the server started with
                metrics["repetition_4gram_rate_samples"] = repetition_4gram_rate(
                    eng, tok, val_raw, params.chunks.prefix_tokens, params.chunks.suffix_tokens, params.seed)
            save_model(final, tok, f"models/sft_{arm}")
            metrics["wall_time_s"] = round(time.time() - t0, 2)
            write_json(f"reports/sft/{arm}_steps.json", history)
            tr.write_metrics(f"reports/sft/{arm}.json", metrics)
    if dist.is_main:
        clear_checkpoints(ckpt)
    dist.barrier()
    dist.end()


if __name__ == "__main__":
    stage_main("sft", run, arms=ARMS_SFT)
