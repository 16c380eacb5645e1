from thinkmid.config import JudgeParams
from thinkmid.judges.factory import make_pairwise_judge, make_reference_judge
from thinkmid.judges.lm import LMPairwiseJudge, LMReferenceJudge

ITEMS = [
    ("The river rises in the mountains and", " flows east to the sea.", " the the the the"),
    ("Population of the capital grew", " by two percent in 2010.", " purple seventeen glass."),
    ("A short prefix", "", " something"),
]


def test_pairwise_valid_verdicts_and_batching_is_consistent(tiny_model, qwen_tok):
    j = LMPairwiseJudge(tiny_model, qwen_tok, calibrate=False, batch_size=2)
    v = j.judge_pairs(ITEMS)
    assert [x.winner in ("A", "B") for x in v] == [True] * 3
    assert j.stats.calls == 3 and j.stats.invalid == 0 and j.bias is None
    one = [LMPairwiseJudge(tiny_model, qwen_tok, calibrate=False).margins([it])[0] for it in ITEMS]
    batched = j.margins(ITEMS)  # left padding must not change the answer
    assert all(abs(a - b) < 1e-4 for a, b in zip(one, batched))


def test_calibration_subtracts_the_content_free_bias(tiny_model, qwen_tok):
    raw = LMPairwiseJudge(tiny_model, qwen_tok, calibrate=False)
    cal = LMPairwiseJudge(tiny_model, qwen_tok, calibrate=True)
    m_raw, m_cal = raw.margins(ITEMS), cal.margins(ITEMS)
    assert cal.bias is not None and cal.bias != 0
    assert all(abs((r - cal.bias) - c) < 1e-5 for r, c in zip(m_raw, m_cal))
    # on the content-free item itself the calibrated judge has no preference left
    assert abs(cal.margins([("N/A", "N/A", "N/A")])[0]) < 1e-5


def test_reference_lm_judge(tiny_model, qwen_tok):
    j = LMReferenceJudge(tiny_model, qwen_tok, calibrate=True)
    out = j.judge([(p, a, a) for p, a, _ in ITEMS] + [(p, a, b) for p, a, b in ITEMS])
    assert len(out) == 6 and set(out) <= {0, 1} and j.stats.calls == 6


def test_factory_builds_lm_judges(tiny_model, qwen_tok, tiny_model_dir):
    pj = make_pairwise_judge(JudgeParams(backend="lm", calibrate=False), tiny_model, qwen_tok)
    assert isinstance(pj, LMPairwiseJudge) and pj.bias is None
    rj = make_reference_judge(JudgeParams(backend="lm", model="path", model_path=str(tiny_model_dir)))
    assert isinstance(rj, LMReferenceJudge)
    assert set(rj.judge(ITEMS[:1])) <= {0, 1}
