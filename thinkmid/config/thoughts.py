"""Params of the knowledge gates and of the thought-interface arms (verbal, abstract, continuous)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from thinkmid.config.optim import CheckpointEvery, LearningRate, MinLrRatio, OptimParams, WarmupSteps
from thinkmid.config.section import Section


class KnowledgeGatesParams(OptimParams):
    """Per-neuron MLP gates trained to forget entity knowledge (reference/lambda-gates-card.txt)."""

    # arm -> the model it probes; dvc.yaml's `foreach` reads this mapping, so it decides which arms run
    # (Params checks each model is one the lifecycle makes: thinkmid/config/arms.py)
    arms: dict[str, str] = {
        "base": "models/base",
        "think_base": "models/sft_think_base",
        "think_base_rlmt": "models/think_base_rlmt",
    }
    knowledge_source: Literal["factbook", "popqa"] = "factbook"
    reasoning_source: Literal["gsm8k", "numina"] = "gsm8k"
    popqa_dataset: str = "akariasai/PopQA"
    numina_dataset: str = "AI-MO/NuminaMath-CoT"
    popqa_revision: str = "main"  # the hub datasets' git revisions (a commit pins them)
    numina_revision: str = "main"
    train_facts: int = Field(16, ge=1)  # knowledge rows the gates train on (the forget set)
    eval_facts: int = Field(16, ge=1)  # held-out knowledge rows for entity accuracy
    reasoning_rows: int = Field(32, ge=1)  # reasoning texts of the retain loss
    seq_len: int = Field(64, ge=8)
    scale_mode: Literal["mean", "energy"] = "energy"
    init_logit_std: float = Field(0.1, ge=0)
    lambda_f: float = Field(0.1, ge=0)
    lambda_r: float = Field(0.5, ge=0)
    unmasked_retain_weight: float = Field(0.0, ge=0)
    beta: float = 4.0
    distill_temperature: float = Field(2.0, gt=0)
    forget_batch_size: int = Field(4, ge=1)
    retain_per_forget: int = Field(2, ge=1)
    # rows per forward in a training step (the loss is accumulated exactly); None: a whole batch at once
    micro_batch_size: int | None = Field(None, ge=1)
    epochs: int = Field(3, ge=1)
    lr: LearningRate = 1e-2
    warmup_steps: WarmupSteps = 0
    min_lr_ratio: MinLrRatio = 0.0
    checkpoint_every: CheckpointEvery = 4
    knowledge_threshold: float = Field(0.5, gt=0, lt=1)
    off_fractions: list[float] = [0.05, 0.25, 0.5, 0.75, 0.95]
    eval_problems: int | None = Field(None, ge=0)  # first n of the reasoning eval's GSM8K subset; None = all
    eval_k: int = Field(1, ge=1)
    eval_temperature: float = Field(0.0, ge=0)  # 0 = greedy
    eval_max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(16, ge=1)  # evaluation forward / generation batch

    @field_validator("off_fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < f < 1 for f in v) or sorted(set(v)) != v:
            raise ValueError("knowledge_gates.off_fractions must be increasing, distinct and each in (0, 1)")
        return v


class ThoughtTaskParams(OptimParams):
    """One task of the thought-interface comparison: its data split and its training/eval sizes."""

    kind: Literal["hops", "modsum", "mult", "gsm8k"] = "hops"
    source: Literal["generated", "wheel", "hub"] = "generated"  # gsm8k: the benchmark wheel or the hub's train
    revision: str = "main"  # source: hub, openai/gsm8k's git revision
    terms: int = Field(4, ge=2)  # modsum: numbers in the addition chain; hops: links to follow
    modulus: int = Field(8, ge=2, le=26)  # modsum: the chain is summed mod this; hops: letters in the table
    digits: int = Field(2, ge=1, le=6)  # mult: digits of each factor
    train: int = Field(2000, ge=1)  # training problems
    eval: int = Field(200, ge=1)  # held-out problems (disjoint from train)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(32, ge=1)
    # rows per forward/backward inside a step (gradients accumulate to the batch_size step); None = all.
    # A 0.6B at batch 128 x 512 tokens needs 40 GB for its fp32 logits alone: the paper profile sets 16
    micro_batch_size: int | None = Field(None, ge=1)
    seq_len: int = Field(128, ge=16)
    lr: LearningRate = 1e-3
    warmup_steps: WarmupSteps = 5
    checkpoint_every: CheckpointEvery = 50
    max_answer_tokens: int = Field(8, ge=1)
    verbal_budgets: list[int] = [0, 4, 8, 16]  # thought-token caps (</think> forced at the cap)
    abstract_budgets: list[int] = [2, 4, 8]  # abstract-token caps (</abstract> forced at the cap)
    latent_steps: list[int] = [0, 1, 2, 4]  # continuous: latent steps at eval (0 = the ablation)
    # procedural: the random-init model the task trains from (its own character-level tokenizer)
    hidden_size: int = Field(128, ge=16)
    layers: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)

    @field_validator("verbal_budgets", "abstract_budgets", "latent_steps")
    @classmethod
    def _nonneg(cls, v: list[int]) -> list[int]:
        if not v or any(x < 0 for x in v):
            raise ValueError("must be a non-empty list of integers >= 0")
        return sorted(set(v))


class ThoughtArmParams(Section):
    model: str  # the model the arm starts from (a DAG output: models/base, models/phase3, models/proc_init)
    task: str  # a key of thoughts.tasks


class AbstractThoughtParams(Section):
    vocab_size: int = Field(64, ge=2, le=1024)  # reserved abstract tokens <abs_00>..
    max_tokens: int = Field(8, ge=1)  # m: the length cap of an abstract sequence
    rounds: int = Field(2, ge=1)  # T: policy-iteration rounds of Phase A + Phase B
    temperature: float = Field(1.0, gt=0)  # sampling abstract sequences for training
    # the card's m: no end marker before this many abstract tokens (in training samples and at eval,
    # where it is min(min_tokens, cap)); 0 lets the end come first, which collapsed rounds to empty thoughts
    min_tokens: int = Field(0, ge=0)
    eval_temperature: float | None = Field(None, gt=0)  # sampling at eval (None: temperature; the card decodes at 0.7)
    # Our additions, not the card's (measured on the embedded parity-12 arm, benchmarks/THOUGHT_INTERFACES.md):
    # round-1 z: `random` (the card) or `reasoning`: z_k names the verbal reasoning's token at the k-th of m
    # evenly spaced positions (the card's random z left the token identities carrying nothing: chance)
    round1_z: Literal["random", "reasoning"] = "random"
    # Phase B's z: `prompt` (the card: sampled from the prompt alone by the Phase A model) or `teacher`
    # (the round's z: round1_z in round 1, the after-reasoning samples later), so the prompt-only model
    # learns to produce informative sequences instead of its own uninformative ones
    phase_b_z: Literal["prompt", "teacher"] = "prompt"
    phase_a: bool = True  # false: Phase B alone (on parity-12, 150 Phase A steps first left Phase B at chance)
    phase_b_epochs: int | None = Field(None, ge=1)  # Phase B's epochs (None: the task's)
    chain_tokens: bool = False  # generated tasks: m = min_tokens = the task's chain length (one token per step)

    @model_validator(mode="after")
    def _min_le_max(self):
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"thoughts.abstract.min_tokens {self.min_tokens} exceeds max_tokens {self.max_tokens}")
        if not self.phase_a and (self.round1_z != "reasoning" or self.phase_b_z != "teacher" or self.rounds != 1):
            raise ValueError(
                "thoughts.abstract.phase_a: false needs round1_z: reasoning, phase_b_z: teacher and rounds: 1 "
                f"(got round1_z: {self.round1_z}, phase_b_z: {self.phase_b_z}, rounds: {self.rounds}); without Phase A "
                "nothing else would inform the abstract tokens"
            )
        return self


class ContinuousThoughtParams(Section):
    latent_steps: int = Field(4, ge=1)  # K (generated tasks use their chain length instead when chain_steps)
    chain_steps: bool = False  # procedural tasks: K = the task's chain length (one latent step per worked step)
    # train half the batches at K, the rest at the eval's other counts (0 included); measured on the
    # parity-12 arm it teaches the answer to ignore the latents (K = 11: 100% -> 48.5%), so off by default
    mixed_steps: bool = False
    teacher_batch: int = Field(64, ge=1)  # rollouts per teacher-state forward
    head_fit_steps: int = Field(0, ge=0)  # head-only warm start: hidden state -> the next thought token's embedding
    lr: float | None = Field(None, gt=0)  # distillation lr (None: the task's); it fine-tunes the verbal model
    rollouts: int = Field(4, ge=1)  # verbal rollouts per training problem (the teacher states)
    rollout_temperature: float = Field(1.0, gt=0)
    weighting: Literal["uniform", "correct"] = "correct"  # average of rollouts: all, or the correct ones only
    distill: Literal["per_step", "final_step"] = "per_step"
    distill_loss: Literal["l1", "smooth_l1"] = "smooth_l1"
    distill_weight: float = Field(1.0, ge=0)


def chain_length(task) -> int:
    """Reasoning steps in one problem's worked chain: running sums, visited letters, or partial
    products plus their sum (the continuous arm's K where the task is procedural). It lives with the params, which check
    the abstract caps against it before any work."""
    if task.kind == "modsum":
        return task.terms - 1
    if task.kind == "hops":
        return max(1, task.terms - 1)
    if task.kind == "mult":
        return task.digits + (1 if task.digits > 1 else 0)
    raise ValueError(f"task kind {task.kind!r} has no fixed chain length")


class ThoughtsParams(Section):
    """Thought interfaces beyond words (issue 17): verbal, abstract-token and continuous arms."""

    arms: dict[str, ThoughtArmParams] = {}
    tasks: dict[str, ThoughtTaskParams] = {}
    abstract: AbstractThoughtParams = AbstractThoughtParams()
    continuous: ContinuousThoughtParams = ContinuousThoughtParams()

    @model_validator(mode="after")
    def _arms_name_tasks(self):
        for name, arm in self.arms.items():
            if arm.task not in self.tasks:
                raise ValueError(
                    f"thoughts.arms.{name}.task: {arm.task!r} is not one of thoughts.tasks {sorted(self.tasks)}"
                )
        return self

    @model_validator(mode="after")
    def _abstract_caps_reach_the_trained_length(self):
        # The abstract arm trains on sequences of at least `lo` tokens; an eval whose every cap is below
        # that scores only thoughts cut short of anything it learned (the H200 stand-in run's mod-10 arm:
        # caps 1-4 against min_tokens 16, 0% at every cap, below chance)
        ab = self.abstract
        for name in sorted({arm.task for arm in self.arms.values()}):
            task = self.tasks[name]
            lo = chain_length(task) if ab.chain_tokens and task.kind != "gsm8k" else min(ab.min_tokens, ab.max_tokens)
            if max(task.abstract_budgets) < lo:
                how = (
                    f"the chain length {lo} (chain_tokens)"
                    if ab.chain_tokens and task.kind != "gsm8k"
                    else (f"thoughts.abstract.min_tokens {lo}")
                )
                raise ValueError(
                    f"thoughts.tasks.{name}.abstract_budgets: {task.abstract_budgets} are all below {how}, the "
                    f"shortest abstract thought the arm trains on; add a cap of at least {lo}"
                )
        return self
