"""Judges: pairwise quality (Phase 3 pools, continuation evals) and reference match (RLMT reward).

Backends: `endpoint` (an LLM over an OpenAI-compatible chat API), `lm` (a local model's option-token
log-probs), `lexical` (word overlap; reference only). Build them with factory.make_*_judge.
"""

from thinkmid.judges.base import JudgeStats, PairwiseJudge, ReferenceJudge, Verdict, check_invalid_rate
from thinkmid.judges.factory import make_pairwise_judge, make_reference_judge
from thinkmid.judges.pairwise import score_pool, score_pools, select_pair

__all__ = [
    "JudgeStats",
    "PairwiseJudge",
    "ReferenceJudge",
    "Verdict",
    "check_invalid_rate",
    "make_pairwise_judge",
    "make_reference_judge",
    "score_pool",
    "score_pools",
    "select_pair",
]
