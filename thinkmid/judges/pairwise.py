"""Phase 3 pool scoring: every unordered pair of a prefix's candidates judged once, A/B order
randomized per pair; a candidate's score is its wins / (pool size - 1). Then one DPO pair per prefix.

All pairs of all prefixes of a step go to the judge in one call (one batch for an LM judge, one
parallel fan-out for an endpoint judge).
"""

from __future__ import annotations

from itertools import combinations

from thinkmid.judges.base import PairwiseJudge


def _pairs(prefix: str, pool: list[str], rng) -> tuple[list[tuple[int, int]], list[tuple[str, str, str]]]:
    """Per unordered pair: (index shown as A, index shown as B) and the judge item."""
    order, items = [], []
    for i, j in combinations(range(len(pool)), 2):
        if rng.random() < 0.5:  # a judge's position bias must not favour low indices
            i, j = j, i
        order.append((i, j))
        items.append((prefix, pool[i], pool[j]))
    return order, items


def score_pools(
    prefixes: list[str], pools: list[list[str]], judge: PairwiseJudge, rng
) -> list[tuple[list[float], int]]:
    """(scores, n_invalid) per prefix, with one judge call for everything. `rng`: random.Random or a
    numpy Generator (anything with .random())."""
    if len(prefixes) != len(pools):
        raise ValueError(f"{len(prefixes)} prefixes but {len(pools)} pools")
    orders, items, spans = [], [], []
    for prefix, pool in zip(prefixes, pools):
        o, it = _pairs(prefix, pool, rng)
        spans.append((len(items), len(items) + len(it)))
        orders.extend(o)
        items.extend(it)
    verdicts = judge.judge_pairs(items) if items else []
    if len(verdicts) != len(items):
        raise RuntimeError(f"judge returned {len(verdicts)} verdicts for {len(items)} pairs")
    out = []
    for pool, (s, e) in zip(pools, spans):
        wins = [0] * len(pool)
        invalid = 0
        for (a, b), v in zip(orders[s:e], verdicts[s:e]):
            if v.winner == "A":
                wins[a] += 1
            elif v.winner == "B":
                wins[b] += 1
            else:
                invalid += 1  # no win to either
        denom = max(1, len(pool) - 1)
        out.append(([w / denom for w in wins], invalid))
    return out


def score_pool(prefix: str, candidates: list[str], judge: PairwiseJudge, rng) -> tuple[list[float], int]:
    return score_pools([prefix], [candidates], judge, rng)[0]


def _pick(indices: list[int], step: int) -> int:
    return indices[step % len(indices)]  # ties rotate with the step, so no index is always favoured


def select_pair(scores: list[float], step: int, is_rollout: list[bool] | None = None) -> tuple[int, int] | None:
    """(chosen, rejected) or None when there is nothing to prefer (all scores equal).

    chosen = argmax over the whole pool; rejected = argmin over the rollouts only, so a non-rollout
    candidate (e.g. the true suffix) can be preferred but is never pushed down. Ties among the
    arg-max (arg-min) indices: the (step mod #tied)-th of them in index order."""
    if is_rollout is None:
        is_rollout = [True] * len(scores)
    if len(is_rollout) != len(scores):
        raise ValueError(f"{len(scores)} scores but {len(is_rollout)} is_rollout flags")
    if len(scores) < 2 or len(set(scores)) == 1:
        return None
    top = max(scores)
    chosen = _pick([i for i, s in enumerate(scores) if s == top], step)
    rollouts = [i for i, r in enumerate(is_rollout) if r and i != chosen]
    if not rollouts:
        return None
    low = min(scores[i] for i in rollouts)
    if low >= top:  # the only candidates left to reject are as good as the chosen one
        return None
    rejected = _pick([i for i in rollouts if scores[i] == low], step)
    return chosen, rejected
