"""Params of the three training stages: Phase 3 self-improvement (Online DPO), thinking SFT, RLMT."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thinkmid.config.optim import CheckpointEvery, LearningRate, MaxGradNorm, OptimParams, WarmupSteps


class SelfImproveParams(OptimParams):
    steps: int = Field(4, ge=1)
    prefixes_per_step: int = Field(2, ge=1)
    k: int = Field(4, ge=2)
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.1, gt=0)
    lr: LearningRate = 1e-6
    warmup_steps: WarmupSteps = 1
    weight_decay: float = Field(0.0, ge=0)
    decay_norms: bool = False  # weight decay on 1-D tensors too (the seed decays every parameter)
    lr_schedule: Literal["thinkmid", "seed"] = "thinkmid"  # optim.lr_factor vs optim.seed_lr_factor
    suppress_eos: bool = False  # rollouts run to k tokens exactly: end-of-text cannot be sampled
    rejected_from: Literal["rollouts", "pool"] = "rollouts"  # argmin over the rollouts or the whole pool


class SftParams(OptimParams):
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    seq_len: int = Field(256, ge=16)
    lr: LearningRate = 5e-5
    weight_decay: float = Field(0.0, ge=0)
    checkpoint_every: CheckpointEvery = 4
    decay_norms: bool = False
    lr_schedule: Literal["thinkmid", "seed"] = "thinkmid"
    raw_steps: int | None = Field(None, ge=1)  # raw_base's step count (token-matched); None: as the think arms
    raw_warmup_steps: int | None = Field(None, ge=0)  # raw_base's warmup; None: warmup_steps
    rep_rows: int = Field(256, ge=1)  # repetition_4gram_rate: the first N val rows of the training field
    append_eos: bool = True  # end each training row with end-of-text (the seed does not)


class RlmtParams(OptimParams):  # its lr is the top-level `lr` (swept by `dvc exp run -S lr=`)
    steps: int = Field(4, ge=1)
    prefixes_per_step: int = Field(2, ge=1)
    k: int = Field(4, ge=2)
    thought_max_tokens: int = Field(16, ge=1)
    suffix_max_tokens: int = Field(32, ge=1)
    temperature: float = Field(1.0, gt=0)
    kl_coef: float = Field(0.02, ge=0)
    clip_eps: float = Field(0.2, gt=0)
    advantage: Literal["grpo", "drgrpo"] = "grpo"
    max_grad_norm: MaxGradNorm = 0.1
    top_p: float = Field(1.0, gt=0, le=1)  # thought and suffix sampling (RLMT, gate, probe)
    lr_schedule: Literal["thinkmid", "seed"] = "thinkmid"
    # sequence: ratio and k3 KL on each sequence's mean token log-prob (the seed); token: per token
    loss_form: Literal["sequence", "token"] = "token"
    row_offset: int = Field(0, ge=0)  # RL rows: the shuffled SFT train rows from this index on
