"""A teacher model interleaves 3-6 short `<think>thought</think>` spans into SFT chunks; audited.

teacher_thoughts.mode "insert": code picks sentence boundaries and the teacher writes one thought for
each; stripping the thoughts must give back the original chunk exactly. "rewrite" (the seed): the
teacher rewrites each chunk (its first teacher_thoughts.chunk_tokens tokens) and places the thoughts
itself; the seed's check (thought count, balanced tags, word coverage, length, before and after the
cut to max_augmented_tokens) with retries (thinkmid/data/rewrite.py). Rows that fail are counted and
dropped. Also writes the teacher's thought at the prefix/suffix boundary of the gate prefixes, which
the thought-use probe uses as its "teacher" condition. Outputs data/thoughts/{train,val,probe}.jsonl.

    python -m stages.teacher_thoughts
"""

from __future__ import annotations

import time

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.data.rewrite import rewrite_rows
from thinkmid.data.teacher import interleave_rows, prefix_thoughts
from thinkmid.data.thoughts import audit_summary, check_drop_rate
from thinkmid.engines.wiring import Part, build
from thinkmid.io import atomic_path, read_jsonl, write_jsonl
from thinkmid.models.tokenizer import load_tokenizer
from thinkmid.timing import timing_path, write_timing
from thinkmid.track import StageRun

OUT = "data/thoughts"
METRICS = "reports/teacher_thoughts/metrics.json"
ROW_KEYS = ("id", "prefix", "suffix", "text", "prefix_ids", "suffix_ids")


def wiring(params: Params, arm: str | None = None) -> list[Part]:
    """The teacher: a chat server (endpoint, port 30003 by default) or a local model through the engine."""
    return [Part("teacher")]


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    tp = params.teacher_thoughts
    splits = {
        name: read_jsonl(f"data/chunks/{src}.jsonl", ROW_KEYS)
        for name, src in (("train", "sft_train"), ("val", "sft_val"), ("probe", "gate"))
    }
    tok = load_tokenizer("models/base")  # the policy's tokenizer: thought-token share is counted in it
    [teacher_part] = wiring(params)
    with build(teacher_part, params) as teacher, StageRun("teacher_thoughts", params) as tr:
        outputs, audits_all, rows_all = {}, [], []
        for name in ("train", "val"):
            if tp.mode == "rewrite":
                rows, audits = rewrite_rows(splits[name], teacher, tok, tp)
                for r in rows:
                    r["text"] = r["original"]  # the chunk as the teacher saw it (cut to chunk_tokens)
            else:
                rows, audits = interleave_rows(splits[name], teacher, tp.min_thoughts, tp.max_thoughts, params.seed)
            audits_all += audits
            rows_all += [r["interleaved"] for r in rows]
            outputs[name] = [
                {
                    "id": r["id"],
                    "source_id": r.get("source_id"),
                    "original": r["text"],
                    "text": r["interleaved"],
                    "n_thoughts": r["n_thoughts"],
                }
                for r, a in zip(rows, audits)
                if a["ok"]
            ]
        probe = splits["probe"]
        outputs["probe"] = [
            {"id": r["id"], "prefix": r["prefix"], "suffix": r["suffix"], "teacher_thought": t}
            for r, t in zip(probe, prefix_thoughts(probe, teacher))
        ]
        check_drop_rate(audits_all, tp.max_invalid_rate)  # before anything is written
        if not outputs["train"] or not outputs["val"]:
            raise RuntimeError("the audit dropped every row of a split: look at the teacher's raw output")
        with atomic_path(OUT) as tmp:
            tmp.mkdir()
            for name, rows in outputs.items():
                write_jsonl(tmp / f"{name}.jsonl", rows)
        summary = audit_summary(audits_all, tok, rows_all)
        cover = [a["word_coverage"] for a in audits_all if a["ok"] and "word_coverage" in a]
        if cover:  # rewrite mode: the seed's raw word coverage of the kept rows
            summary["raw_word_coverage_mean"] = sum(cover) / len(cover)
        summary.update(
            train_rows=len(outputs["train"]),
            val_rows=len(outputs["val"]),
            probe_rows_with_thought=sum(bool(r["teacher_thought"]) for r in outputs["probe"]),
        )
        tr.write_metrics(METRICS, summary)
        write_timing(tr, timing_path("teacher_thoughts"), {"wall_time_s": round(time.time() - t0, 2)})
        tr.log_artifact(f"{OUT}/val.jsonl")


if __name__ == "__main__":
    stage_main("teacher_thoughts", run)
