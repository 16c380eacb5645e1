"""The thought-interface comparison (issue 17) at a GPU scale: a generated task, a random-init model,
every interface trained and scored with the library the stages use (no MLflow, no params file).

    PYTHONPATH=. python benchmarks/thought_interfaces.py --kind modsum --terms 24 --modulus 2 --out runs/x.jsonl \
        --budget_s 200

Writes one JSON line per eval row (interface, budget, thought tokens, accuracy) plus one per phase
with its wall time, all tagged with the device, each flushed as soon as it is known. Order: no
thought and verbal first, then the arms of --arms in the order given. Abstract: by default the
embedded path (our additions: z anchored to the verbal reasoning at m = the chain length evenly
spaced positions, Phase B alone on them, --abs_b_epochs epochs); --abs_z1 random --abs_b_z prompt
--abs_phase_a 1 --rounds 2 is the card's warm-up, with a bottleneck-probe line per round.
Continuous: K = the chain length unless --K; head warm start --head_fit steps; distillation at
--distill_lr over --distill_rows problems. --budget_s: past that many seconds of wall time the
phase in flight is cut, a `budget_exhausted` line names it, and the script exits 0 with every row
it finished already written (no external `timeout` needed).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import signal
import tempfile
import time
from types import SimpleNamespace

import torch

from benchmarks.common import stamp, write_row
from thinkmid.engines.hf import HFEngine
from thinkmid.thoughts import abstract as ab
from thinkmid.thoughts import continuous as ct
from thinkmid.thoughts import evaluate as ev
from thinkmid.thoughts import procedural as pr
from thinkmid.thoughts.tasks import verbal_example
from thinkmid.thoughts.train import run_phase


def main() -> None:
    a = argparse.ArgumentParser()
    for k, v in dict(
        kind="modsum",
        terms=24,
        modulus=2,
        digits=2,
        train=20000,
        eval=1000,
        epochs=4,
        batch_size=256,
        seq_len=96,
        lr=1e-3,
        hidden=256,
        layers=4,
        heads=8,
        rounds=1,
        abs_max=4,
        abs_min=-1,
        abs_chain=1,
        abs_z1="reasoning",
        abs_b_z="teacher",
        abs_phase_a=0,
        abs_b_epochs=0,
        abs_eval_temp=0.7,
        K=0,
        mixed=0,
        rollouts=2,
        distill_rows=2000,
        distill_epochs=0,
        head_fit=1500,
        distill_lr=1e-4,
        abs_from_verbal=0,
        arms="none,abstract,continuous",
        out="benchmarks/runs/thoughts.jsonl",
        tag="",
        budget_s=0.0,
    ).items():
        a.add_argument(f"--{k}", type=type(v), default=v)
    args = a.parse_args()
    chain = pr.chain_length(SimpleNamespace(kind=args.kind, terms=args.terms, digits=args.digits))
    if args.abs_chain:  # one abstract token per worked step, as the embedded default
        args.abs_max = chain
    args.abs_min = args.abs_max if args.abs_min < 0 else args.abs_min  # default: fixed-length abstract sequences
    args.K = args.K or chain
    if not args.abs_phase_a and (args.abs_z1 != "reasoning" or args.abs_b_z != "teacher" or args.rounds != 1):
        a.error("--abs_phase_a 0 needs --abs_z1 reasoning --abs_b_z teacher --rounds 1 (nothing else informs z)")
    arms = [x for x in args.arms.split(",") if x]
    if set(arms) - {"none", "abstract", "continuous"}:
        a.error(f"--arms: expected names from none,abstract,continuous, got {args.arms!r}")
    task = SimpleNamespace(
        kind=args.kind,
        terms=args.terms,
        modulus=args.modulus,
        digits=args.digits,
        train=args.train,
        eval=args.eval,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        lr=args.lr,
        warmup_steps=20,
        min_lr_ratio=0.1,
        max_grad_norm=1.0,
        checkpoint_every=10**9,
    )
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    train, held = pr.generate(task, 0)
    n_thought = len(pr.char_tokenizer().encode(train[0].steps, add_special_tokens=False))  # thought tokens
    budgets = sorted({0, n_thought // 4, n_thought // 2, n_thought})
    ckpt = tempfile.mkdtemp()
    meta = stamp(tag=args.tag, task=vars(args))

    def emit(rec):
        write_row({**meta, **rec}, args.out, shown=rec)  # the file gets the stamp, the screen the record

    t_start, current = time.time(), {"phase": "start"}
    if args.budget_s > 0:  # SIGALRM raises between Python bytecodes: the phase in flight stops there
        signal.signal(signal.SIGALRM, _out_of_budget)
        signal.setitimer(signal.ITIMER_REAL, args.budget_s)
    try:
        run_all(args, arms, task, train, held, budgets, n_thought, dev, ckpt, emit, current)
    except BudgetExhausted:
        emit({"phase": "budget_exhausted", "cut": current["phase"], "elapsed_s": round(time.time() - t_start, 1)})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        shutil.rmtree(ckpt, ignore_errors=True)


class BudgetExhausted(Exception):
    """--budget_s ran out."""


def _out_of_budget(signum, frame):
    raise BudgetExhausted()


def run_all(args, arms, task, train, held, budgets, n_thought, dev, ckpt, emit, current) -> None:
    """No thought and verbal, then each arm of --arms in its order."""

    def fresh():
        tok = pr.char_tokenizer()
        return pr.init_model(tok, args.hidden, args.layers, args.heads, 0).to(dev), tok

    def phase(name, model, ex, task_override=None, **kw):
        t = time.time()
        current["phase"] = name
        s = run_phase(name, model, ex, task_override or task, 0, ckpt, None, 0, pr.char_tokenizer().pad_token_id, **kw)
        emit({"phase": name, "steps": s["steps"], "final_loss": s["final_loss"], "wall_s": round(time.time() - t, 2)})

    for with_steps in (False, True) if "none" in arms else (True,):  # no thought, verbal
        model, tok = fresh()
        phase(
            "verbal" if with_steps else "no_thought",
            model,
            [verbal_example(tok, p, with_steps, task.seq_len) for p in train],
        )
        current["phase"] = "verbal_eval" if with_steps else "no_thought_eval"
        eng = HFEngine(model, tok, batch_size=1024)
        rows = ev.verbal(eng, tok, held, budgets, 4)[0] if with_steps else ev.no_thought(eng, tok, held, 4)
        for r in rows:
            emit(r)
    verbal_model = model
    for arm in arms:  # in the order given: a budget cut loses the last ones
        if arm == "continuous":  # it trains a copy of the verbal model
            continuous_arm(args, task, train, held, copy.deepcopy(verbal_model), n_thought, dev, phase, emit, current)
        elif arm == "abstract":
            start = (lambda: (copy.deepcopy(verbal_model), pr.char_tokenizer())) if args.abs_from_verbal else fresh
            abstract_arm(args, task, train, held, start, phase, emit, current)


def abstract_arm(args, task, train, held, fresh, phase, emit, current) -> None:
    """The embedded path by default (one Phase B on reasoning-anchored sequences), or T rounds of the
    card's Phase A (bottleneck) and Phase B (self-distillation); from the same random init, or
    (`--abs_from_verbal 1`) from the verbal model, as the card starts from a model that already reasons."""
    model, tok = fresh()
    ab.extend_vocab(model, tok, 64, 0)
    model.to(next(model.parameters()).device)
    eng = HFEngine(model, tok, batch_size=1024)
    abs_ids, _, _ = ab.ids(tok, 64)
    lo, hi = args.abs_min, args.abs_max
    task_b = SimpleNamespace(**{**vars(task), "epochs": args.abs_b_epochs or task.epochs})
    for r in range(1, args.rounds + 1):
        current["phase"] = f"abstract_r{r}_z"
        if r > 1:
            zs = ab.sample_sequences(eng, tok, train, 64, hi, 1.0, r, with_reasoning=True, min_tokens=lo)
        elif args.abs_z1 == "reasoning":
            zs = ab.anchored_sequences(tok, train, 64, hi)
        else:
            zs = ab.random_sequences(len(train), hi, abs_ids, r)
        if args.abs_phase_a:
            z_loss = r > 1 or args.abs_z1 == "reasoning"
            ex = [ab.phase_a_example(tok, p, z, 64, z_loss, task.seq_len) for p, z in zip(train, zs)]
            phase(f"abstract_r{r}_a", model, ex, bottleneck=True)
            current["phase"] = f"abstract_r{r}_a_probe"
            emit({"phase": f"abstract_r{r}_a_probe", **ab.bottleneck_probe(eng, model, tok, held, 64, lo, hi, r + 900)})
        if args.abs_b_z == "prompt":
            current["phase"] = f"abstract_r{r}_b_z"
            zs = ab.sample_sequences(eng, tok, train, 64, hi, 1.0, r + 500, min_tokens=lo)
        ex = [ab.phase_b_example(tok, p, z, 64, task.seq_len) for p, z in zip(train, zs)]
        phase(f"abstract_r{r}_b", model, ex, task_override=task_b)
        emit(
            {
                "phase": f"abstract_r{r}_b_samples",
                "mean_abstract_tokens": sum(map(len, zs)) / max(1, len(zs)),
                "distinct_first_tokens": len({tuple(z[:1]) for z in zs}),
            }
        )
    current["phase"] = "abstract_eval"
    caps = sorted({1, hi // 4, hi // 2, hi} - {0})
    for r in ev.abstract(eng, tok, held, 64, caps, 4, 0, temperature=args.abs_eval_temp, min_tokens=lo)[0]:
        emit(r)


def continuous_arm(args, task, train, held, verbal_model, n_thought, dev, phase, emit, current) -> None:
    """K latent steps (default: the chain length) distilled from the verbal model's own rollouts."""
    current["phase"] = "continuous_teacher"
    tok = pr.char_tokenizer()
    eng = HFEngine(verbal_model, tok, batch_size=1024)
    sub = train[: min(len(train), args.distill_rows)]
    t = time.time()
    rolls = ct.rollouts(eng, tok, sub, args.rollouts, n_thought + 2, 4, 1.0, 0)
    cp = SimpleNamespace(distill="per_step", distill_loss="smooth_l1", distill_weight=1.0)
    steps = sorted({0, 1, args.K // 2, args.K})
    trained = [s for s in steps if s > 0] if args.mixed else [args.K]
    targets, weights, stats = ct.teacher_states(verbal_model, tok, sub, rolls, trained, "correct", 512)
    emit({"phase": "continuous_teacher", **stats, "wall_s": round(time.time() - t, 2)})
    torch.manual_seed(0)
    module = ct.LatentLM(verbal_model, ct.ProjectionHead.for_model(verbal_model).to(dev))
    if args.head_fit:
        current["phase"] = "continuous_head_fit"
        emit(
            {
                "phase": "continuous_head_fit",
                "loss": ct.fit_head(module.head, verbal_model, tok, sub, rolls, args.head_fit),
            }
        )
    pick = ct.step_schedule(args.K, steps, bool(args.mixed))

    def loss_fn(m, idx, d):
        k = pick(idx)
        return ct.latent_forward(m, tok, [sub[i] for i in idx], k, targets[k][idx] if k else None, weights[idx], cp)

    dtask = SimpleNamespace(
        **{**vars(task), "epochs": args.distill_epochs or task.epochs, "lr": args.distill_lr or task.lr}
    )
    phase("continuous", module, list(range(len(sub))), loss_fn=loss_fn, task_override=dtask)
    current["phase"] = "continuous_eval"
    for r in ev.continuous(eng, tok, held, module.head, steps, 4)[0]:
        emit(r)


if __name__ == "__main__":
    main()
