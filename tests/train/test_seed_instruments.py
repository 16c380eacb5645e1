"""The seed's instruments on hand-made cases: LR schedule, sequence-level ratio/KL, artifact test,
avg_total_new_tokens, group rates without invalid verdicts, thought-token NLL, 4-gram rate on data.
Expected values follow the seed's definitions (jbarnes850/synthetic-pretrain @ f5a982a)."""

import math

import pytest
import torch

from thinkmid.rollouts import Sample, artifact_flag, group_stats, seed_thought_text, seed_total_new_tokens
from thinkmid.train.losses import rlmt_loss
from thinkmid.train.optim import make_optimizer, make_scheduler, seed_lr_factor
from thinkmid.train.sft import repetition_4gram_rate_data, seed_thought_rows, thought_token_nll_seed


def test_seed_schedule_is_hf_cosine_with_warmup():
    """train_rlmt.py: get_cosine_schedule_with_warmup(opt, 2, steps): the first update at lr 0."""
    want = [0.0, 0.5, 1.0, 0.5 * (1 + math.cos(math.pi / 3)), 0.5 * (1 + math.cos(2 * math.pi / 3))]
    assert [seed_lr_factor(s, 2, 5, 0.0) for s in range(5)] == pytest.approx(want)
    # train.py cosine_with_floor_schedule: the same shape, floored (SFT and Phase 3, floor 0.1).
    assert seed_lr_factor(3, 2, 5, 0.1) == pytest.approx(0.1 + 0.9 * want[3])
    opt = make_optimizer(torch.nn.Linear(2, 2), lr=2.0)
    sched = make_scheduler(opt, 2, 5, 0.0, kind="seed")
    used = []
    for _ in range(5):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert used == pytest.approx([2.0 * w for w in want])
    with pytest.raises(ValueError):
        make_scheduler(opt, 2, 5, 0.0, kind="nope")


def test_sequence_ratio_and_k3_on_sequence_means():
    new = torch.tensor([[-1.0, -3.0], [-2.0, -9.0]], requires_grad=True)  # seq means -2, -2 (pad masked)
    ref = torch.tensor([[-1.0, -1.0], [-1.0, 0.0]])  # seq means -1, -1: d = 1 for both
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, -1.0])
    loss, m = rlmt_loss(new, new.detach(), ref, mask, adv, kl_coef=0.0, form="sequence")
    assert m["kl"] == pytest.approx(math.e - 2) and m["ratio_mean"] == 1.0 and m["clip_frac"] == 0.0
    loss.backward()
    # -mean_i(A_i * mean_t logp): d/d token = -A_i / N / len_i; the masked pad gets nothing.
    assert new.grad.reshape(-1).tolist() == pytest.approx([-0.25, -0.25, 0.5, 0.0])
    # Per-token k3 is another number: mean over sequences of token-mean k3 (tokens d = 0, 2 and 1).
    _, tok = rlmt_loss(new, new.detach(), ref, mask, adv, kl_coef=0.0, form="token")
    assert tok["kl"] == pytest.approx(((math.exp(2) - 3) / 2 + (math.e - 2)) / 2)


@pytest.mark.parametrize(
    "text,flag",
    [
        ("A plain sentence about rivers and towns.", False),
        ("bad \ufffd byte", True),
        ("<think>a</think> <think>b</think> <think>c</think>", True),  # three openers
        ("<think>a</think> <think>b</think>", False),  # two is allowed
        ("As an AI language model I cannot", True),
        ("I'm unable to continue", True),
        ("wait" + "!" * 25, True),
        ("wait" + "!" * 24, False),
        ("1234 5678 9012 3456 7890 1234 5678 9012 3456 7890 x", True),  # 40+ visible, letters < 35%
        ("12 34 ab", False),  # fewer than 40 visible characters: no letter-share test
    ],
)
def test_seed_artifact_flag(text, flag):
    assert artifact_flag(text) is flag


def test_seed_thought_text():
    assert seed_thought_text("  the sea </think> tail") == "the sea"
    assert seed_thought_text("<think> open only") == "open only"


def _s(reward, suffix_len=3, thought_tokens=2):
    return Sample(
        prompt_ids=[1],
        thought_ids=[5] * 9,
        suffix_ids=[7] * suffix_len,
        thought_logps=[],
        suffix_logps=[],
        closed_by_model=False,
        suffix_text="x",
        thought_text="t",
        reward=reward,
        extra={"seed_thought_tokens": thought_tokens},
    )


def test_seed_total_new_tokens_pads_to_the_longest_suffix_of_each_batch_of_8():
    samples = [_s(0, n) for n in (3, 5, 1, 1, 1, 1, 1, 1, 2, 4)]
    # batch 1 (8 samples): longest suffix 5; batch 2 (2 samples): longest 4; + 2 thought tokens each
    assert seed_total_new_tokens(samples) == [7] * 8 + [6, 6]
    st = group_stats([samples[:5], samples[5:]])
    assert st["avg_total_new_tokens"] == pytest.approx((7 * 8 + 12) / 10)
    assert st["avg_total_new_tokens_sampled"] == pytest.approx(
        sum(9 + 1 + n for n in (3, 5, 1, 1, 1, 1, 1, 1, 2, 4)) / 10
    )


def test_group_rates_leave_invalid_verdicts_out():
    """Seed (summarize_step / summarize_arm): rates over groups with >= 1 valid verdict; near-zero
    needs >= 2 valid verdicts; mixed = range > 0; reward mean over valid only."""
    groups = [
        [_s(1), _s(None), _s(0)],  # mixed
        [_s(0), _s(0), _s(None)],  # near-zero, all-zero
        [_s(1), _s(None), _s(None)],  # one valid verdict: all-one, not near-zero
        [_s(None), _s(None), _s(None)],  # no valid verdict: not a group for the rates
    ]
    st = group_stats(groups)
    assert st["mixed_groups"] == pytest.approx(1 / 3) and st["near_zero_groups"] == pytest.approx(1 / 3)
    assert st["all_zero_groups"] == pytest.approx(1 / 3) and st["all_one_groups"] == pytest.approx(1 / 3)
    assert st["reward_mean"] == pytest.approx(2 / 5) and st["invalid_rate"] == pytest.approx(7 / 12)


def test_repetition_4gram_rate_on_data():
    # row 1: 4-grams (1234)(2341)(3412)(4123)(1234) -> one repeat of 5; row 2 too short; row 3: none of 2
    rows = [[1, 2, 3, 4, 1, 2, 3, 4], [9, 9, 9], [5, 6, 7, 8, 9]]
    assert repetition_4gram_rate_data(rows) == pytest.approx(1 / 7)
    assert repetition_4gram_rate_data([[3, 3, 3, 3, 3, 3]]) == pytest.approx(2 / 3)  # (3333) x3
    assert repetition_4gram_rate_data([]) == 0.0


def test_seed_thought_rows_mask_the_tags_too(qwen_tok):
    ids, mask = seed_thought_rows(qwen_tok, ["Rain falls. <think>Why?</think> In summer."])[0]
    thought = [t for t, m in zip(ids, mask) if m]
    assert thought[0] == 151667 and thought[-1] == 151668  # <think> ... </think>
    assert qwen_tok.decode(thought) == "<think>Why?</think>"
    assert seed_thought_rows(qwen_tok, ["a b c d e f"], max_len=3)[0][0] == qwen_tok.encode("a b c d e f")[:3]


def test_thought_token_nll_is_a_mean_of_row_means(qwen_tok):
    from tests.conftest import make_tiny_qwen3

    model = make_tiny_qwen3(seed=1)
    texts = [
        "Rain. <think>A long thought about the weather in the hills.</think> Then sun.",
        "Wind <think>short</think> ends.",
    ]
    rows = seed_thought_rows(qwen_tok, texts)
    row_means, pooled_num, pooled_den = [], 0.0, 0
    for ids, mask in rows:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")
        keep = torch.tensor(mask[1:])
        row_means.append(float(nll[keep].mean()))
        pooled_num, pooled_den = pooled_num + float(nll[keep].sum()), pooled_den + int(keep.sum())
    got = thought_token_nll_seed(model, qwen_tok, texts, batch_size=2)
    assert got == pytest.approx(sum(row_means) / 2, rel=1e-4)
    assert got != pytest.approx(pooled_num / pooled_den, rel=1e-4)  # not token-pooled
