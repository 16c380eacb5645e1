"""SFT arms: raw_base (base on raw chunks), think_base (base on thought chunks), think_phase3 (phase3
on thought chunks); next-token loss on all tokens. All arms train on the same audited rows.

Metrics are the results record's SFT columns as the seed computed them: thought_token_nll (per-row mean
over thought segments, tags included, on the trained arm; "4.24" is the raw_base arm), and
repetition_4gram_rate on the first sft.rep_rows val rows of the arm's training field (data, not
samples). Ours stay beside them: thought_token_nll_before/after (tokens inside the tags, pooled,
before = the starting model) and repetition_4gram_rate_samples (sampled continuations). raw_base can
run its own step count and warmup (sft.raw_steps, sft.raw_warmup_steps: the seed's token-matched
657 steps and warmup 64), going on into a second pass over the rows if it needs to.
A `Recipe` (thinkmid/train/recipe.py: setup -> train -> cleanup), resumable from checkpoints/sft_<arm>
(refused if the params, the start model or the train rows changed; the current lr and schedule are
used). Outputs: models/sft_<arm>, reports/sft/<arm>.json and <arm>_steps.json (results),
<arm>_timing.json (throughput, free memory, wall and step times).

    python -m stages.sft --arm think_base
    accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 -m stages.sft --arm think_base

Under `accelerate launch` each rank trains on its rows of every global batch (`sft.batch_size` stays
the global batch, so the loss curve is the one-process curve); the main process alone writes metrics,
MLflow, checkpoints and the model (thinkmid/train/dist.py).
"""

from __future__ import annotations

import logging

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.config.arms import is_raw
from thinkmid.data.thoughts import validate_thought_text
from thinkmid.engines.wiring import Part, build, policy
from thinkmid.io import read_jsonl, write_json
from thinkmid.models.load import load_model, save_model
from thinkmid.timing import timing_path, write_timing
from thinkmid.train.dist import Dist
from thinkmid.train.loop import ThroughputMeter, clip_and_step, min_available_mem_gib, num_sft_batches, sft_batches
from thinkmid.train.optim import make_optimizer, make_scheduler
from thinkmid.train.recipe import Recipe, make_fingerprint
from thinkmid.train.sft import (
    arm_source,
    encode_rows,
    mean_nll,
    repetition_4gram_rate,
    repetition_4gram_rate_data,
    thought_token_nll_seed,
)


def load_thought_rows(path: str) -> list[dict]:
    rows = read_jsonl(path, ("text", "original"))
    for i, r in enumerate(rows, start=1):
        validate_thought_text(r["text"], f"{path}:{i}")  # an unclosed <think> is bad input, not data
    return rows


log = logging.getLogger(__name__)
TRAIN, VAL = "data/thoughts/train.jsonl", "data/thoughts/val.jsonl"


def wiring(params: Params, arm: str | None) -> list[Part]:
    """The sampled repetition metric's engine: started on the arm's starting model, then synced with the
    trained weights (a no-op in process; a server engine loads them)."""
    return [policy(arm_source(params.arms.sft, arm)[0], trains=True, label=arm)]


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


class Sft(Recipe):
    stage, step_key = "sft", "train_loss"

    @property
    def checkpoint_every(self) -> int:
        return self.params.sft.checkpoint_every

    def setup(self) -> None:
        params, p, arm, dist = self.params, self.params.sft, self.arm, self.dist
        self.start_dir, self.field = arm_source(params.arms.sft, arm)
        train = load_thought_rows(TRAIN)
        self.val = load_thought_rows(VAL)
        self.model, self.tok = load_model(self.start_dir, dtype=params.base.dtype)
        self.model.to(dist.device())
        tok, field = self.tok, self.field
        self.train_ids = encode_rows(tok, [r[field] for r in train], p.seq_len, p.append_eos)
        self.val_ids = encode_rows(tok, [r[field] for r in self.val], p.seq_len, p.append_eos)
        self.val_raw = encode_rows(tok, [r["original"] for r in self.val], p.seq_len, p.append_eos)
        self.val_think = encode_rows(tok, [r["text"] for r in self.val], p.seq_len, p.append_eos)
        self.per_epoch = num_sft_batches(len(self.train_ids), p.batch_size)
        self.total, warmup = self.per_epoch * p.epochs, p.warmup_steps
        if is_raw(arm):  # the seed matches raw_base's tokens to the think arms' with more steps
            self.total = p.raw_steps or self.total
            warmup = p.raw_warmup_steps if p.raw_warmup_steps is not None else warmup
        self.optimizer = make_optimizer(self.model, p.lr, p.weight_decay, decay_norms=p.decay_norms)
        self.scheduler = make_scheduler(self.optimizer, warmup, self.total, p.min_lr_ratio, kind=p.lr_schedule)
        # raw_steps / raw_warmup_steps only shape the raw arms' runs; the think arms ignore them.
        exclude = set() if is_raw(arm) else {"raw_steps", "raw_warmup_steps"}
        self.fingerprint = make_fingerprint(
            {"seed": params.seed, "base.dtype": params.base.dtype, "arm": arm, "sft": p.model_dump(exclude=exclude)},
            {"start model": self.start_dir, "train rows": TRAIN},
        )
        self.can_checkpoint = not dist.is_fsdp
        if dist.is_fsdp:  # checkpoints hold whole tensors; FSDP's are sharded
            log.warning("sft under FSDP: no mid-run checkpoints, a killed run starts over (use DDP to resume)")
        else:
            self.resume()
        self.nll_before = self.extra.get("thought_token_nll_before")
        if self.nll_before is None:
            self.nll_before = mean_nll(
                self.model, tok, self.val_think, p.batch_size, p.seq_len, thoughts_only=True, dist=dist
            )
        self.tokens_seen = int(self.extra.get("tokens_seen", 0))
        self.meter = ThroughputMeter()
        min_available_mem_gib(reset=True)
        self.model, self.optimizer = dist.prepare(self.model, self.optimizer, lm_loss=True)  # DDP: the fused loss too
        self.eval_model = self.model if dist.is_fsdp else dist.unwrap(self.model)
        self.model.train()
        self.batches = self._batches()

    def _batches(self):
        """Global batches from self.step on: the order depends only on (seed, epoch, batch size)."""
        p, step = self.params.sft, self.step
        while True:
            epoch, start_batch = divmod(step, self.per_epoch)
            for batch in sft_batches(
                self.train_ids,
                p.seq_len,
                p.batch_size,
                self.params.seed,
                epoch,
                self.tok.pad_token_id,
                start_batch=start_batch,
            ):
                yield batch
                step += 1

    def train_step(self, step: int) -> dict:
        p, dist = self.params.sft, self.dist
        loss, loss_value, tokens = dist.lm_loss(self.model, next(self.batches))  # this rank's rows; global mean
        loss.backward()
        lr = self.scheduler.get_last_lr()[0]
        gnorm = clip_and_step(
            self.model,
            self.optimizer,
            self.scheduler,
            p.max_grad_norm,
            loss=loss_value,
            step=step,
            accelerator=dist.accelerator,
        )
        self.meter.add(tokens)
        self.tokens_seen += int(tokens)
        min_available_mem_gib()
        return {
            "train_loss": loss_value,
            "grad_norm": gnorm,
            "lr": lr,
            "tokens_seen": self.tokens_seen,
            "throughput_tok_s": self.meter.tokens_per_s,
        }

    def checkpoint_extra(self) -> dict:
        return {"thought_token_nll_before": self.nll_before, "tokens_seen": self.tokens_seen}

    def cleanup(self) -> None:
        params, p, arm, dist, tok, m = self.params, self.params.sft, self.arm, self.dist, self.tok, self.eval_model
        val_loss = mean_nll(m, tok, self.val_ids, p.batch_size, p.seq_len, dist=dist)
        metrics = {
            "arm": arm,
            "val_loss": val_loss,
            "raw_val_loss": mean_nll(m, tok, self.val_raw, p.batch_size, p.seq_len, dist=dist),
            "selected_metric": val_loss,  # checkpoint selection reads the arm's own val format
            "thought_token_nll_before": self.nll_before,
            "thought_token_nll_after": mean_nll(
                m, tok, self.val_think, p.batch_size, p.seq_len, thoughts_only=True, dist=dist
            ),
            "thought_token_nll": thought_token_nll_seed(m, tok, [r["text"] for r in self.val], p.seq_len, p.batch_size),
            "repetition_4gram_rate": repetition_4gram_rate_data(
                [tok.encode(r[self.field], add_special_tokens=False)[: p.seq_len] for r in self.val[: p.rep_rows]]
            ),
            "tokens_seen": self.tokens_seen,
            "steps": self.step,
        }
        final = _final_model(dist, self.model, self.start_dir, params.base.dtype)
        if dist.is_main:  # the others wait at the barrier in Recipe.run
            [sampler] = wiring(params, arm)
            with build(sampler, params, final, tok, progress=False) as eng:
                eng.sync(final, tok)  # the metric scores the trained model, not what the server started with
                metrics["repetition_4gram_rate_samples"] = repetition_4gram_rate(
                    eng, tok, self.val_raw, params.chunks.prefix_tokens, params.chunks.suffix_tokens, params.seed
                )
            save_model(final, tok, f"models/sft_{arm}")
            write_json(f"reports/sft/{arm}_steps.json", self.steps_rows())
            self.tr.write_metrics(f"reports/sft/{arm}.json", metrics)
            write_timing(
                self.tr,
                timing_path("sft", arm),
                {
                    "throughput_tok_s": self.meter.tokens_per_s,
                    "min_available_mem_gib": min_available_mem_gib(),
                    "wall_time_s": self.wall_time_s(),
                    "steps": self.step_timing(),
                },
            )


def run(params: Params, arm: str | None) -> None:
    Sft(params, arm).run()


if __name__ == "__main__":
    stage_main("sft", run, arms=lambda p: p.arms.sft)
