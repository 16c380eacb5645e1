"""The shared SFT phase: the bottleneck mask really hides the reasoning from the answer, and a
phase killed mid-way resumes to the same weights as a straight run."""

import pytest
import torch

from thinkmid.config import ThoughtTaskParams
from thinkmid.thoughts import procedural as pr
from thinkmid.thoughts.tasks import ANSWER_SEG, LATENT, PROMPT, REASON, build, verbal_example
from thinkmid.thoughts.train import collate, run_phase

TASK = ThoughtTaskParams(
    kind="modsum",
    terms=6,
    modulus=2,
    train=12,
    eval=4,
    epochs=2,
    batch_size=4,
    seq_len=40,
    lr=1e-3,
    warmup_steps=0,
    checkpoint_every=2,
)


def _model():
    tok = pr.char_tokenizer()
    return pr.init_model(tok, hidden_size=16, layers=1, heads=2, seed=0), tok


def test_bottleneck_mask_hides_reasoning_from_answer():
    model, tok = _model()
    model.eval()

    def ex(reason):
        return build(
            [(PROMPT, [3, 4, 5], False), (REASON, reason, True), (LATENT, [6, 7], True), (ANSWER_SEG, [8, 9, 0], True)]
        )

    a, b = ex([10, 11, 12]), ex([13, 14, 15])  # the same layout, different reasoning
    ans = [i for i, s in enumerate(a["seg"]) if s == ANSWER_SEG]
    lat = [i for i, s in enumerate(a["seg"]) if s == LATENT]
    with torch.no_grad():
        masked = [
            model(
                **{k: v for k, v in collate([e], 0, bottleneck=True).items() if k in ("input_ids", "attention_mask")}
            ).logits
            for e in (a, b)
        ]
        plain = [
            model(**{k: v for k, v in collate([e], 0).items() if k in ("input_ids", "attention_mask")}).logits
            for e in (a, b)
        ]
    # With one layer, the answer positions see the reasoning only directly: masked, nothing changes.
    torch.testing.assert_close(masked[0][0, ans], masked[1][0, ans])
    assert not torch.allclose(plain[0][0, ans], plain[1][0, ans])
    assert not torch.allclose(masked[0][0, lat], masked[1][0, lat])  # the abstract positions still see it


def test_padding_rows_are_finite_under_the_bottleneck_mask():
    model, tok = _model()
    rows = [verbal_example(tok, p, True, 40) for p in pr.generate(TASK, 0)[0][:3]]
    rows[0] = build([(PROMPT, [3], False), (REASON, [4], True), (ANSWER_SEG, [5], True)])  # short: padded
    batch = collate(rows, tok.pad_token_id, bottleneck=True)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.isfinite(logits).all()


def test_phase_resumes_to_the_same_weights(tmp_path):
    train, _ = pr.generate(TASK, 0)
    straight, tok = _model()
    ex = [verbal_example(tok, p, True, 40) for p in train]
    s1 = run_phase("p", straight, ex, TASK, 0, tmp_path / "a", None, 0, tok.pad_token_id)
    assert s1["steps"] == 6

    killed, _ = _model()
    calls = {"n": 0}

    def dying(model, idx, device):
        calls["n"] += 1
        if calls["n"] == 4:  # dies after the checkpoint at step 2 and one more step
            raise KeyboardInterrupt
        from thinkmid.thoughts.train import lm_loss

        return lm_loss(model, collate([ex[i] for i in idx], tok.pad_token_id), device)

    with pytest.raises(KeyboardInterrupt):
        run_phase("p", killed, ex, TASK, 0, tmp_path / "b", None, 0, tok.pad_token_id, loss_fn=dying)
    resumed, _ = _model()
    s2 = run_phase("p", resumed, ex, TASK, 0, tmp_path / "b", None, 0, tok.pad_token_id)
    for (n, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, msg=n)
    assert s2["steps"] == 6 and s2["final_loss"] == pytest.approx(s1["final_loss"])
    again, _ = _model()  # a finished phase is skipped: its weights are loaded
    run_phase(
        "p",
        again,
        ex,
        TASK,
        0,
        tmp_path / "b",
        None,
        0,
        tok.pad_token_id,
        loss_fn=lambda *a: (_ for _ in ()).throw(AssertionError("trained again")),
    )
    torch.testing.assert_close(again.state_dict()["lm_head.weight"], straight.state_dict()["lm_head.weight"])


def test_micro_batches_give_the_whole_batch_step(tmp_path):
    """micro_batch_size splits a step's forward/backward (the paper's GSM8K batch of 128 does not fit
    one H200 at once); the weights after the phase are the whole-batch ones, up to fp32 rounding."""
    train, _ = pr.generate(TASK, 0)
    whole, tok = _model()
    ex = [verbal_example(tok, p, True, 40) for p in train]
    ex[0] = {**ex[0], "labels": [-100] * 5 + ex[0]["labels"][5:]}  # unequal target counts per row
    s1 = run_phase("p", whole, ex, TASK, 0, tmp_path / "a", None, 0, tok.pad_token_id)
    split, _ = _model()
    s2 = run_phase(
        "p", split, ex, TASK.model_copy(update={"micro_batch_size": 3}), 0, tmp_path / "b", None, 0, tok.pad_token_id
    )
    for (n, a), (_, b) in zip(whole.state_dict().items(), split.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=n)
    assert s2["final_loss"] == pytest.approx(s1["final_loss"], rel=1e-4)
