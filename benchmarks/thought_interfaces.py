"""The thought-interface comparison (issue 17) at a GPU scale: a generated task, a random-init model,
every interface trained and scored with the library the stages use (no MLflow, no params file).

    PYTHONPATH=. python benchmarks/thought_interfaces.py --kind modsum --terms 24 --modulus 2 --out runs/x.jsonl

Writes one JSON line per eval row (interface, budget, thought tokens, accuracy) plus one per phase
with its wall time, all tagged with the device.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from types import SimpleNamespace

import torch

from benchmarks.common import device_name
from thinkmid.engines.hf import HFEngine
from thinkmid.thoughts import abstract as ab
from thinkmid.thoughts import continuous as ct
from thinkmid.thoughts import evaluate as ev
from thinkmid.thoughts import procedural as pr
from thinkmid.thoughts.tasks import verbal_example
from thinkmid.thoughts.train import run_phase


def main() -> None:
    a = argparse.ArgumentParser()
    for k, v in dict(kind="modsum", terms=24, modulus=2, digits=2, train=20000, eval=1000, epochs=4, batch_size=256,
                     seq_len=96, lr=1e-3, hidden=256, layers=4, heads=8, rounds=2, abs_max=4, K=4, rollouts=2, distill_rows=2000,
                     out="benchmarks/runs/thoughts.jsonl", tag="").items():  # fmt: skip
        a.add_argument(f"--{k}", type=type(v), default=v)
    args = a.parse_args()
    task = SimpleNamespace(kind=args.kind, terms=args.terms, modulus=args.modulus, digits=args.digits, train=args.train,
                           eval=args.eval, epochs=args.epochs, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                           warmup_steps=20, min_lr_ratio=0.1, max_grad_norm=1.0, checkpoint_every=10**9)  # fmt: skip
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    train, held = pr.generate(task, 0)
    n_thought = len(pr.char_tokenizer().encode(train[0].steps, add_special_tokens=False))  # thought tokens
    budgets = sorted({0, n_thought // 4, n_thought // 2, n_thought})
    ckpt = tempfile.mkdtemp()
    meta = {"device": device_name(), "date": time.strftime("%Y-%m-%d"), "tag": args.tag, "task": vars(args)}
    out = open(args.out, "a", encoding="utf-8")

    def emit(rec):
        out.write(json.dumps({**meta, **rec}) + "\n")
        out.flush()
        print(json.dumps(rec), flush=True)

    def fresh():
        tok = pr.char_tokenizer()
        return pr.init_model(tok, args.hidden, args.layers, args.heads, 0).to(dev), tok

    def phase(name, model, ex, **kw):
        t = time.time()
        s = run_phase(name, model, ex, task, 0, ckpt, None, 0, tok.pad_token_id, **kw)
        emit({"phase": name, "steps": s["steps"], "final_loss": s["final_loss"], "wall_s": round(time.time() - t, 2)})

    for with_steps in (False, True):  # no thought, verbal
        model, tok = fresh()
        phase("verbal" if with_steps else "no_thought", model, [verbal_example(tok, p, with_steps, task.seq_len) for p in train])
        eng = HFEngine(model, tok, batch_size=1024)
        rows = ev.verbal(eng, tok, held, budgets, 4)[0] if with_steps else ev.no_thought(eng, tok, held, 4)
        for r in rows:
            emit(r)
    verbal_model = model

    model, tok = fresh()  # abstract, from the same random init
    ab.extend_vocab(model, tok, 64, 0)
    model.to(dev)
    eng = HFEngine(model, tok, batch_size=1024)
    abs_ids, _, _ = ab.ids(tok, 64)
    for r in range(1, args.rounds + 1):
        zs = (ab.random_sequences(len(train), args.abs_max, abs_ids, r) if r == 1 else
              ab.sample_sequences(eng, tok, train, 64, args.abs_max, 1.0, r, with_reasoning=True))  # fmt: skip
        phase(f"abstract_r{r}_a", model, [ab.phase_a_example(tok, p, z, 64, r > 1, task.seq_len) for p, z in zip(train, zs)],
              bottleneck=True)  # fmt: skip
        zs = ab.sample_sequences(eng, tok, train, 64, args.abs_max, 1.0, r + 500)
        phase(f"abstract_r{r}_b", model, [ab.phase_b_example(tok, p, z, 64, task.seq_len) for p, z in zip(train, zs)])
    for r in ev.abstract(eng, tok, held, 64, sorted({1, args.abs_max // 2, args.abs_max}), 4, 0)[0]:
        emit(r)

    tok = pr.char_tokenizer()  # continuous, from the verbal model and its own rollouts
    eng = HFEngine(verbal_model, tok, batch_size=1024)
    sub = train[: min(len(train), args.distill_rows)]
    t = time.time()
    rolls = ct.rollouts(eng, tok, sub, args.rollouts, n_thought + 2, 4, 1.0, 0)
    cp = SimpleNamespace(distill="per_step", distill_loss="smooth_l1", distill_weight=1.0)
    targets, weights, stats = ct.teacher_states(verbal_model, tok, sub, rolls, args.K, "correct")
    emit({"phase": "continuous_teacher", **stats, "wall_s": round(time.time() - t, 2)})
    torch.manual_seed(0)
    module = ct.LatentLM(verbal_model, ct.ProjectionHead(args.hidden).to(dev))
    phase("continuous", module, list(range(len(sub))),
          loss_fn=lambda m, idx, d: ct.latent_forward(m, tok, [sub[i] for i in idx], args.K, targets[idx], weights[idx], cp))
    for r in ev.continuous(eng, tok, held, module.head, sorted({0, 1, args.K // 2, args.K}), 4)[0]:
        emit(r)
    shutil.rmtree(ckpt, ignore_errors=True)


if __name__ == "__main__":
    main()
