"""Phase 3 continuation eval maths: the record's headline, the stricter both-orders figure, suffix NLL.

The record ("81/128 = 63.28%", "suffix NLL 2.56 -> 2.60"; the seed's scripts/eval_continuations.py
@ f5a982a, lines 112-122, 125-156, 300-372) judges each held-out prefix ONCE, in a random A/B order
(phase3 is option A with probability 0.5), and reports phase3 wins / (phase3 wins + base wins):
invalid verdicts leave the denominator (and so, here, do pairs whose two continuations are the same
text, which are not sent to the judge: `identical`). Its raw suffix NLL is the mean over batches (8 rows each) of
the token-mean cross-entropy of the true suffix given the prefix.

Ours, kept beside it under its own names (`both_orders_*`): the same pair judged in both orders; a
prefix is a win only when phase3 wins both, a loss when it loses both, otherwise a tie; the rate is
wins over all prefixes.
"""

from __future__ import annotations

import random

from thinkmid.evals.stats import wilson_interval


def order_swaps(n: int, seed: int) -> list[bool]:
    """Per prefix, whether phase3 is shown as option A (one fair coin per prefix, seeded)."""
    rng = random.Random(seed)
    return [rng.random() < 0.5 for _ in range(n)]


def single_order(verdicts: list[str | None], swaps: list[bool]) -> list[str]:
    """Each prefix's outcome from its one verdict: "win" (phase3), "loss", "identical" (the verdict
    "same": both continuations were the same text, not judged) or "invalid"."""
    out = []
    for v, phase3_is_a in zip(verdicts, swaps, strict=True):
        if v == "same":
            out.append("identical")
        elif v not in ("A", "B"):
            out.append("invalid")
        else:
            out.append("win" if (v == "A") == phase3_is_a else "loss")
    return out


def both_orders(v_base_first: str | None, v_phase3_first: str | None) -> str:
    """Order 1: A=base, B=phase3. Order 2: A=phase3, B=base. Identical texts ("same") tie."""
    if v_base_first == "same" or v_phase3_first == "same":
        return "tie"
    if v_base_first is None or v_phase3_first is None:
        return "invalid"
    p3 = (v_base_first == "B") + (v_phase3_first == "A")
    return {2: "win", 0: "loss"}.get(p3, "tie")


def headline(single: list[str], both: list[str]) -> dict:
    """The record's headline (wins over valid verdicts) and the both-orders figure, with counts."""
    wins, losses = single.count("win"), single.count("loss")
    valid = wins + losses
    lo, hi = wilson_interval(wins, valid)
    b = {k: both.count(k) for k in ("win", "loss", "tie", "invalid")}
    n = len(both)
    b_lo, b_hi = wilson_interval(b["win"], n)
    return {
        "prefixes": len(single),
        "wins": wins,
        "losses": losses,
        "identical": single.count("identical"),
        "invalid": single.count("invalid"),
        "comparisons": valid,
        "win_rate": wins / valid if valid else 0.0,
        "win_rate_lo": lo,
        "win_rate_hi": hi,
        "both_orders_wins": b["win"],
        "both_orders_losses": b["loss"],
        "both_orders_ties": b["tie"],
        "both_orders_invalid": b["invalid"],
        "both_orders_win_rate": b["win"] / n if n else 0.0,
        "both_orders_win_rate_lo": b_lo,
        "both_orders_win_rate_hi": b_hi,
    }


def suffix_nll(model, rows: list[dict], batch_size: int = 8) -> float:
    """Mean over batches of the token-mean NLL of `suffix_ids` after `prefix_ids` (the seed's
    evaluate_val_loss on its raw rows); 0.0 for no rows."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    losses = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            seqs = [list(r["prefix_ids"]) + list(r["suffix_ids"]) for r in batch]
            width = max(len(s) for s in seqs)
            ids = torch.zeros(len(seqs), width, dtype=torch.long)
            mask = torch.zeros(len(seqs), width, dtype=torch.long)
            labels = torch.full((len(seqs), width), -100, dtype=torch.long)
            for i, (r, s) in enumerate(zip(batch, seqs)):
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = 1
                p = len(r["prefix_ids"])
                labels[i, p : len(s)] = torch.tensor(s[p:])
            # only positions that predict a suffix token need logits: [B, width, vocab] in fp32 is most
            # of the cost (152k-entry vocab), and the prefix is 3/4 of the width
            keep = width - min(len(r["prefix_ids"]) for r in batch) + 1
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=keep)
            logits = out.logits.float()
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]),
                labels[:, width - keep + 1 :].reshape(-1).to(device),
                ignore_index=-100,
            )
            losses.append(float(loss))
    return sum(losses) / len(losses) if losses else 0.0
