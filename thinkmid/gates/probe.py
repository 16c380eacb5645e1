"""The probe: a gated model's entity knowledge and GSM8K reasoning at each off-fraction.

At an off-fraction f the gates below the threshold that closes f of them are shut (0) and the others
open (1), with the run's rescale mode applied to that 0/1 mask per layer; f = 0 is the ungated model.
Entity accuracy is teacher-forced on held-out facts: a fact counts when every entity token is the
model's top-1 prediction (what greedy decoding would write); token accuracy and the entity NLL are
kept as finer measures. Reasoning accuracy is the reasoning eval's GSM8K scoring
(thinkmid/evals/reasoning: same prompts, answer extraction and math-verify check) on the first
`eval_problems` problems of the reasoning eval's own GSM8K subset, sampled with the hf engine in
process (a server could not see the gates). The NLL of those problems' reference solutions is a
continuous companion for models too small to solve any.
"""

from __future__ import annotations

import torch

from thinkmid.engines.hf import HFEngine
from thinkmid.evals.reasoning.run import evaluate
from thinkmid.gates.data import clean_solution, gsm8k_rows
from thinkmid.gates.train import pad


@torch.no_grad()
def entity_accuracy(model, facts: list[dict], pad_id: int, batch_size: int) -> dict[str, float]:
    exact = tokens_ok = tokens = 0
    nll = 0.0
    dev = next(model.parameters()).device
    for i in range(0, len(facts), batch_size):
        chunk = facts[i : i + batch_size]
        b = pad([f["ids"] for f in chunk], pad_id, [f["entity_mask"] for f in chunk])
        ids, m = b["input_ids"].to(dev), b["mask"][:, 1:].to(dev).bool()
        logits = model(input_ids=ids, attention_mask=b["attention_mask"].to(dev)).logits[:, :-1].float()
        tgt = ids[:, 1:]
        hit = (logits.argmax(-1) == tgt) | ~m
        exact += int(hit.all(dim=1).sum())
        tokens_ok += int((hit & m).sum())
        tokens += int(m.sum())
        nll += float((-torch.log_softmax(logits, -1).gather(-1, tgt[..., None]).squeeze(-1))[m].sum())
    return {
        "entity_acc": exact / len(facts),
        "entity_token_acc": tokens_ok / max(tokens, 1),
        "entity_nll": nll / max(tokens, 1),
    }


@torch.no_grad()
def text_nll(model, rows: list[list[int]], pad_id: int, batch_size: int) -> float:
    total, count = 0.0, 0
    dev = next(model.parameters()).device
    for i in range(0, len(rows), batch_size):
        b = pad(rows[i : i + batch_size], pad_id)
        ids, attn = b["input_ids"].to(dev), b["attention_mask"].to(dev)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=attn).logits[:, :-1].float(), -1)
        nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        m = attn[:, 1:].bool()
        total, count = total + float(nll[m].sum()), count + int(m.sum())
    return total / max(count, 1)


def solution_rows(tokenizer, problems, seq_len: int) -> list[list[int]]:
    """Reference solutions of GSM8K eval problems (ids `gsm8k-<row>`) as token rows."""
    rows = gsm8k_rows()
    out = []
    for p in problems:
        r = rows[int(p.id.rsplit("-", 1)[1])]
        text = f"Question: {r['question'].strip()}\nAnswer: {clean_solution(r['answer'])}"
        out.append(tokenizer.encode(text, add_special_tokens=False)[:seq_len])
    return out


def probe_points(
    model,
    gates,
    tokenizer,
    facts: list[dict],
    problems,
    solutions: list[list[int]],
    fractions: list[float],
    thresholds: list[float],
    cfg,
    batch_size: int,
    seed: int,
    top_p: float = 1.0,
) -> list[dict]:
    """One row per point (ungated first, then each off-fraction): entity and reasoning measures."""
    pad_id = tokenizer.pad_token_id
    rows = []
    try:
        for frac, thr in [(0.0, None), *zip(fractions, thresholds)]:
            closed = gates.close_below(thr)
            row = {"off_fraction": frac, "threshold": thr, "closed_fraction": closed}
            row.update(entity_accuracy(model, facts, pad_id, batch_size))
            row["gsm8k_solution_nll"] = text_nll(model, solutions, pad_id, batch_size) if solutions else None
            if problems:
                engine = HFEngine(model, tokenizer, batch_size=batch_size)  # a fresh decoder per mask
                summary, _ = evaluate(
                    engine,
                    tokenizer,
                    {"gsm8k": problems},
                    cfg.eval_k,
                    cfg.eval_temperature,
                    top_p,
                    cfg.eval_max_new_tokens,
                    seed,
                    progress=False,
                )
                engine.close()
                g = summary["gsm8k"]
                row.update(
                    reasoning_acc=g["mean_at_k"],
                    reasoning_pass_at_k=g["pass_at_k"],
                    reasoning_acc_lo=g["mean_at_k_lo"],
                    reasoning_acc_hi=g["mean_at_k_hi"],
                    reasoning_samples=g["samples"],
                )
            rows.append(row)
    finally:
        gates.close_below(None)
    return rows
