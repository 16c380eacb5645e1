import pytest

from thinkmid.config import JudgeParams
from thinkmid.errors import InputError
from thinkmid.judges.factory import make_pairwise_judge, make_reference_judge
from thinkmid.judges.lexical import LexicalReferenceJudge, rouge_l, unigram_f1


def test_unigram_f1():
    assert unigram_f1("The cat sat", "the CAT sat.") == 1.0
    assert unigram_f1("a b c d", "a b x y") == pytest.approx(0.5)
    assert unigram_f1("", "") == 1.0 and unigram_f1("", "x") == 0.0 and unigram_f1("q", "z") == 0.0
    assert unigram_f1("a a a", "a") == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))  # clipped counts


def test_rouge_l_counts_order():
    assert rouge_l("a b c d", "a b c d") == 1.0
    assert rouge_l("d c b a", "a b c d") == pytest.approx(0.25)
    assert unigram_f1("d c b a", "a b c d") == 1.0


def test_judge_thresholds_and_scores():
    j = LexicalReferenceJudge(threshold=0.5)
    items = [("p", "the river floods in spring", "The river floods every spring."), ("p", "cars", "the river")]
    labels, scores = j.score(items)
    assert labels == [1, 0] and scores[0] > 0.5 and scores[1] == 0.0
    assert j.judge(items) == [1, 0] and j.stats.calls == 4 and j.stats.invalid == 0


def test_factory_dispatch():
    j = make_reference_judge(JudgeParams(backend="lexical", lexical_threshold=0.9))
    assert isinstance(j, LexicalReferenceJudge) and j.threshold == 0.9
    with pytest.raises(InputError, match="lexical"):
        make_pairwise_judge(JudgeParams(backend="lexical"))
    with pytest.raises(InputError, match="base model"):
        make_pairwise_judge(JudgeParams(backend="lm"))
    with pytest.raises(InputError, match="model_path"):
        make_reference_judge(JudgeParams(backend="lm", model="path"))
