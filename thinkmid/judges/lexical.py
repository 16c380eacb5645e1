"""Reference judge by word overlap: offline, deterministic, no model. The embedded profile's RLMT
reward: 1 if the overlap between predicted and true suffix (lowercased words) >= threshold."""

from __future__ import annotations

import re
from collections import Counter

from thinkmid.judges.base import JudgeStats

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def unigram_f1(predicted: str, reference: str) -> float:
    p, r = words(predicted), words(reference)
    if not p or not r:
        return float(p == r)  # both empty: identical; one empty: nothing in common
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(r)
    return 2 * prec * rec / (prec + rec)


def rouge_l(predicted: str, reference: str) -> float:
    """ROUGE-L F1: longest common subsequence of words, so word order counts."""
    p, r = words(predicted), words(reference)
    if not p or not r:
        return float(p == r)
    prev = [0] * (len(r) + 1)
    for x in p:
        cur = [0]
        for j, y in enumerate(r):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    prec, rec = lcs / len(p), lcs / len(r)
    return 2 * prec * rec / (prec + rec)


METRICS = {"f1": unigram_f1, "rouge_l": rouge_l}


class LexicalReferenceJudge:
    def __init__(self, threshold: float = 0.3, metric: str = "f1"):
        if metric not in METRICS:
            raise ValueError(f"lexical metric must be one of {sorted(METRICS)}")
        self.threshold, self.metric = threshold, metric
        self.stats = JudgeStats()
        self.last_scores: list[float] = []

    def score(self, items: list[tuple[str, str, str]]) -> tuple[list[int], list[float]]:
        """(labels, overlap scores); never invalid."""
        fn = METRICS[self.metric]
        scores = [fn(pred, ref) for _, pred, ref in items]
        self.stats.calls += len(items)
        self.last_scores = scores
        return [int(s >= self.threshold) for s in scores], scores

    def judge(self, items: list[tuple[str, str, str]]) -> list[int | None]:
        return self.score(items)[0]
