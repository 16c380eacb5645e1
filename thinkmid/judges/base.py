"""What every judge returns and counts, and the two judge interfaces stages call.

Pairwise (Phase 3 pools, continuation evals): which of two continuations of a prefix is better.
Reference (RLMT reward): does a predicted suffix match the true one (1/0). An unusable answer is an
invalid verdict (None), counted in JudgeStats, never guessed; stages stop on too many of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Verdict:
    winner: str | None  # "A", "B", or None when the judge's answer was invalid
    raw: str = ""  # the judge's answer as given (text, or the log-prob margin for LM judges)
    error: str | None = None  # why it is invalid

    @property
    def valid(self) -> bool:
        return self.winner is not None


@dataclass
class JudgeStats:
    calls: int = 0  # judgments asked for (one per pair / per item)
    invalid: int = 0
    retries: int = 0  # HTTP retries made (endpoint judges)

    @property
    def invalid_rate(self) -> float:
        return self.invalid / self.calls if self.calls else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "invalid_rate": self.invalid_rate}


@runtime_checkable
class PairwiseJudge(Protocol):
    stats: JudgeStats

    def judge_pairs(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        """items: (prefix, continuation A, continuation B); one Verdict each, in order."""


@runtime_checkable
class ReferenceJudge(Protocol):
    stats: JudgeStats

    def judge(self, items: list[tuple[str, str, str]]) -> list[int | None]:
        """items: (prefix, predicted suffix, true suffix); 1 match, 0 no match, None invalid."""


def check_invalid_rate(stats: JudgeStats, max_rate: float, what: str = "judge") -> None:
    """Raise when too many verdicts were invalid: the numbers built on them would mean little."""
    if stats.calls and stats.invalid_rate > max_rate:
        raise RuntimeError(
            f"{what}: {stats.invalid}/{stats.calls} judge verdicts invalid ({stats.invalid_rate:.1%}) > "
            f"max_invalid_rate {max_rate:.1%}; check the judge endpoint/model and its prompt "
            f"(retries made: {stats.retries})"
        )
