"""The one generation interface every stage uses; backends (hf, openai) implement it.

Prompts and completions are token ids so that the log-probs an engine returns line up with the
training loss's tokens. `n` samples per prompt share that prompt's prefill where the backend can.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    n: int = 1
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    stop_token_ids: tuple[int, ...] = ()  # generation of a row ends after emitting one of these
    seed: int = 0
    # Tokens that can never be sampled (Phase 3: end-of-text, so every rollout runs to max_new_tokens,
    # as the seed's `min_new_tokens=max_new_tokens` does).
    suppress_token_ids: tuple[int, ...] = ()
    allowed_token_ids: tuple[int, ...] = ()  # when set, sampling is masked to these ids (hf engine)


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]  # log-prob of each sampled token under the sampling distribution's model
    finish_reason: str  # "stop" (a stop token was emitted, it is included in token_ids) or "length"
    text: str = ""


@dataclass
class TwoStageCompletion:
    """prefix -> thought (stops at </think>) -> inserted </think> -> suffix."""

    thought: Completion  # without the closing tag, even if the model emitted it
    suffix: Completion
    closed_by_model: bool  # the model emitted </think> itself within the thought budget
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    tokenizer: object

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """For each prompt, `params.n` completions."""

    def update_weights(self, model_dir: str) -> None:
        """Load new policy weights from a saved model dir."""

    def sync(self, model, tokenizer) -> None:
        """Bring the engine up to date with `model`, the weights being trained: a no-op in process
        (`hf` samples from `model` itself); a server engine saves them and has its server load them.
        Every training stage calls it after its updates (self_improve, rlmt, sft's sampled metric)."""

    def close(self) -> None: ...


def two_stage(
    engine: Engine,
    prompts: list[list[int]],
    thought: SamplingParams,
    suffix: SamplingParams,
    close_ids: list[int],
) -> list[list[TwoStageCompletion]]:
    """The RLMT interface: sample a thought, insert </think> ourselves, sample the suffix.

    One engine call per stage for the whole batch: `thought.n` thoughts per prompt, then one suffix
    for each (prompt + thought + </think>).
    """
    stop = set(thought.stop_token_ids)
    thoughts = engine.generate(prompts, thought)
    flat_prompts, index = [], []
    for i, comps in enumerate(thoughts):
        for j, c in enumerate(comps):
            closed = bool(c.token_ids) and c.token_ids[-1] in stop
            ids = c.token_ids[:-1] if closed else c.token_ids
            flat_prompts.append(list(prompts[i]) + ids + list(close_ids))
            index.append((i, j, closed))
    suffix1 = SamplingParams(
        max_new_tokens=suffix.max_new_tokens,
        n=1,
        temperature=suffix.temperature,
        top_p=suffix.top_p,
        stop_token_ids=suffix.stop_token_ids,
        seed=suffix.seed,
    )
    suffixes = engine.generate(flat_prompts, suffix1) if flat_prompts else []
    out: list[list[TwoStageCompletion]] = [[] for _ in prompts]
    for (i, j, closed), s in zip(index, suffixes):
        c = thoughts[i][j]
        t = Completion(
            token_ids=c.token_ids[:-1] if closed else c.token_ids,
            logprobs=c.logprobs[:-1] if closed else c.logprobs,
            finish_reason=c.finish_reason,
        )
        out[i].append(TwoStageCompletion(thought=t, suffix=s[0], closed_by_model=closed))
    return out
