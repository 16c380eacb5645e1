import copy
import math

import pytest
import torch

from thinkmid.config import RlmtParams
from thinkmid.engines.hf import HFEngine
from thinkmid.errors import InputError
from thinkmid.judges.base import JudgeStats
from thinkmid.rollouts import Sample
from thinkmid.train.optim import lr_factor
from thinkmid.train.rlmt import STEP_KEYS, RlmtTrainer, step_rows, step_seed, summarize
from thinkmid.train.rlmt_update import advantages, build_completion, engine_logprobs, token_budget

CLOSE = 151668
SENTENCES = [
    ("The river runs through the old town and", " past the mill before it reaches the sea."),
    ("Most of the country is covered by forest,", " and the rest is farmland or mountains."),
    ("The capital has a population of about", " two million people in its metro area."),
]
TIME_KEYS = {"step_time_s", "gen_time_s", "judge_time_s", "update_time_s"}


class StubJudge:
    """A reference judge whose verdict is a function of (item index, predicted suffix)."""

    def __init__(self, fn):
        self.fn, self.stats = fn, JudgeStats()

    def judge(self, items):
        out = [self.fn(i, pred) for i, (_, pred, _) in enumerate(items)]
        self.stats.calls += len(out)
        self.stats.invalid += sum(v is None for v in out)
        return out


@pytest.fixture(scope="module")
def rows(qwen_tok):
    return [
        {"id": str(i), "prefix": p, "suffix": s, "prefix_ids": qwen_tok.encode(p), "suffix_ids": qwen_tok.encode(s)}
        for i, (p, s) in enumerate(SENTENCES)
    ]


def _rp(**kw):
    base = dict(
        steps=4,
        prefixes_per_step=2,
        k=2,
        thought_max_tokens=3,
        suffix_max_tokens=4,
        warmup_steps=1,
        kl_coef=0.02,
        max_grad_norm=1.0,
        checkpoint_every=2,
    )
    return RlmtParams(**{**base, **kw})


@pytest.fixture(scope="module")
def sft(tiny_model_dir):
    from thinkmid.models.load import load_model

    return load_model(tiny_model_dir)


def _trainer(sft, rows, judge, rp, lr=1e-3, max_invalid_rate=1.0):
    model, tok = sft
    policy, ref = copy.deepcopy(model), copy.deepcopy(model)  # a fresh start from the SFT weights
    engine = HFEngine(policy, tok, batch_size=8)
    return RlmtTrainer(
        policy, ref, tok, engine, judge, rows, rp, lr=lr, seed=0, max_invalid_rate=max_invalid_rate, micro_batch=4
    )


def _params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_build_completion_masks_inserted_close():
    ids, mask = build_completion([5, 6], [7, 8, 9], CLOSE)
    assert ids == [5, 6, CLOSE, 7, 8, 9]
    assert mask == [1, 1, 0, 1, 1, 1]
    ids, mask = build_completion([], [7], CLOSE)  # the model closed the thought at once
    assert ids == [CLOSE, 7] and mask == [0, 1]


def _sample(thought, suffix, reward=None, tl=None, sl=None):
    return Sample(
        prompt_ids=[1],
        thought_ids=thought,
        suffix_ids=suffix,
        thought_logps=tl if tl is not None else [-1.0] * len(thought),
        suffix_logps=sl if sl is not None else [-2.0] * len(suffix),
        closed_by_model=False,
        suffix_text="",
        thought_text="",
        reward=reward,
    )


def test_engine_logprobs_align_with_completion():
    s = _sample([5, 6], [7], tl=[-0.5, -0.25], sl=[-1.5])
    assert engine_logprobs(s) == [-0.5, -0.25, 0.0, -1.5]
    assert len(engine_logprobs(s)) == len(build_completion(s.thought_ids, s.suffix_ids, CLOSE)[0])
    assert engine_logprobs(_sample([5], [7], sl=[])) is None  # a backend that returned no log-probs


def test_invalid_verdicts_are_dropped_from_the_advantages():
    """The seed (train_rlmt.py) normalises over valid_records only: an invalid verdict is neither a
    0 in its group's mean/std nor a trained sample. Group 1 = valid [1, 0, 0] (mean 1/3, population
    std sqrt(2)/3); group 2 = valid [0, 0] (no spread: advantages 0)."""
    groups = [
        [_sample([1], [2], 1), _sample([1], [2], None), _sample([1], [2], 0), _sample([1], [2], 0)],
        [_sample([1], [2], None), _sample([1], [2], 0), _sample([1], [2], 0)],
    ]
    sd = math.sqrt(2) / 3
    want = [(2 / 3) / (sd + 1e-6), (-1 / 3) / (sd + 1e-6), (-1 / 3) / (sd + 1e-6), 0.0, 0.0]
    assert advantages(groups) == pytest.approx(want)
    # Scored 0 instead, the first group would be [1, 0, 0, 0]: another mean, another std.
    assert advantages(groups)[0] != pytest.approx(0.75 / (math.sqrt(3) / 4 + 1e-6))


def test_rows_cycle_and_seeds():
    rows = [{"id": i} for i in range(3)]
    assert [r["id"] for r in step_rows(rows, 0, 2)] == [0, 1]
    assert [r["id"] for r in step_rows(rows, 1, 2)] == [2, 0]
    seeds = {step_seed(0, s) + d for s in range(50) for d in (0, 1)}  # thought and suffix seeds never repeat
    assert len(seeds) == 100
    assert token_budget(_rp()) == 3 + 1 + 4


def test_step_updates_policy_with_mixed_groups(sft, rows):
    tr = _trainer(sft, rows, StubJudge(lambda i, _: i % 2), _rp())
    before = _params(tr.policy)
    m = tr.step(0)
    assert set(m) == {"step", *STEP_KEYS}
    assert m["mixed_groups"] == 1.0 and m["near_zero_groups"] == 0.0
    assert m["reward_mean"] == pytest.approx(0.5)
    assert m["logprob_mismatch"] < 1e-3  # engine log-probs == teacher-forced ones (fp32)
    assert m["clip_frac"] == 0.0 and m["kl"] == pytest.approx(0.0, abs=1e-6)  # first update: ratio 1, pi == ref
    assert m["grad_norm"] > 0 and m["length_drift"] == 0.0
    after = _params(tr.policy)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(a, b) for a, b in zip(tr.ref.parameters(), [before[k] for k in before]))  # ref frozen


def test_step_leaves_policy_when_groups_all_equal(sft, rows):
    # Half the groups all 0, half all 1: no learning signal, and the k3 KL has zero gradient at pi == ref.
    tr = _trainer(sft, rows, StubJudge(lambda i, _: int(i < 2)), _rp(advantage="drgrpo"))
    before = _params(tr.policy)
    m = tr.step(0)
    assert m["near_zero_groups"] == 1.0 and m["mixed_groups"] == 0.0
    assert m["all_zero_groups"] == m["all_one_groups"] == 0.5
    assert m["pg_loss"] == 0.0 and m["grad_norm"] == 0.0
    after = _params(tr.policy)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_too_many_invalid_verdicts_stop_before_the_update(sft, rows):
    tr = _trainer(sft, rows, StubJudge(lambda i, _: None if i % 2 else 1), _rp(), max_invalid_rate=0.25)
    before = _params(tr.policy)
    with pytest.raises(RuntimeError, match="invalid"):
        tr.step(0)
    assert all(torch.equal(before[k], v) for k, v in _params(tr.policy).items())


def _content_judge(i, pred):
    """Reward from the sample itself (mixed and reproducible); some verdicts invalid."""
    return None if len(pred) % 7 == 3 else int(len(pred) % 2 == 0)


def _drop_times(history):
    return [{k: v for k, v in h.items() if k not in TIME_KEYS} for h in history]


def test_resume_matches_uninterrupted(sft, rows, tmp_path):
    rp = _rp()
    straight = _trainer(sft, rows, StubJudge(_content_judge), rp)
    for s in range(4):
        straight.step(s)

    first = _trainer(sft, rows, StubJudge(_content_judge), rp)
    assert first.restore(tmp_path / "ck") == 0
    for s in range(2):
        first.step(s)
    first.save(tmp_path / "ck")
    second = _trainer(sft, rows, StubJudge(_content_judge), rp)
    start = second.restore(tmp_path / "ck")
    assert start == 2 and len(second.history) == 2
    for s in range(start, 4):
        second.step(s)

    a, b = _drop_times(straight.history), _drop_times(second.history)
    assert [h["step"] for h in b] == [0, 1, 2, 3]
    for ha, hb in zip(a, b):
        assert ha.keys() == hb.keys()
        for k in ha:
            assert ha[k] == pytest.approx(hb[k], rel=1e-5, abs=1e-7), k
    sa, sb = _params(straight.policy), _params(second.policy)
    assert all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa)
    assert any(h["mixed_groups"] > 0 for h in a)  # the runs did learn something to compare
    assert not all(torch.equal(sa[k], v) for k, v in _params(first.ref).items())

    # A changed batch (prefixes per step) would skip or repeat rows: refused, naming the key.
    with pytest.raises(InputError, match=r"rlmt.prefixes_per_step: 2 -> 3"):
        _trainer(sft, rows, StubJudge(_content_judge), _rp(prefixes_per_step=3)).restore(tmp_path / "ck")
    # Another lr continues the run with the CURRENT lr and schedule, not the checkpoint's.
    lowered = _trainer(sft, rows, StubJudge(_content_judge), rp, lr=2e-4)
    assert lowered.restore(tmp_path / "ck") == 2
    want = 2e-4 * lr_factor(2, rp.warmup_steps, rp.steps, rp.min_lr_ratio)
    assert lowered.optimizer.param_groups[0]["lr"] == pytest.approx(want)
    assert lowered.scheduler.get_last_lr()[0] == pytest.approx(want)
    assert lowered.step(2)["lr"] == pytest.approx(want)

    summary = summarize("think_base", straight.history, None)
    assert summary["completed_steps"] == 4 and summary["final_reward"] == a[-1]["reward_mean"]
    assert math.isclose(summary["avg_reward"], sum(h["reward_mean"] for h in a) / 4)
