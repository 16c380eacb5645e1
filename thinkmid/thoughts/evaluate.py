"""The one eval every thought interface goes through: greedy answers on the same held-out problems,
accuracy against the thought tokens (or latent steps) spent, and the ablations.

Rows: {interface, budget, thought_tokens (mean spent), accuracy, correct, n, split}. `budget` is the
thought-token cap (verbal, abstract) or the number of latent steps (continuous).
"""

from __future__ import annotations

from thinkmid.engines.base import SamplingParams
from thinkmid.thoughts import abstract as ab
from thinkmid.thoughts.continuous import answer_params
from thinkmid.thoughts.tasks import is_correct, prompt_ids, think_ids_of


def _row(interface: str, budget: int, spent: list[int], oks: list[bool], split: str) -> dict:
    n = len(oks)
    return {
        "interface": interface,
        "budget": budget,
        "thought_tokens": sum(spent) / max(1, n),
        "accuracy": sum(oks) / max(1, n),
        "correct": int(sum(oks)),
        "n": n,
        "split": split,
    }


def _answers(engine, tok, prompts, max_answer) -> list[str]:
    outs = engine.generate(prompts, answer_params(tok, max_answer))
    return [tok.decode(o[0].token_ids) for o in outs]


def verbal(engine, tok, problems, budgets, max_answer, split="eval") -> tuple[list[dict], list[dict]]:
    """Thought capped at each budget (</think> forced there), then the answer; budget 0 = empty thought."""
    t_open, t_close = think_ids_of(tok)
    prompts = [prompt_ids(tok, p) + [t_open] for p in problems]
    rows, samples = [], []
    for b in budgets:
        th = SamplingParams(max_new_tokens=b, temperature=0.0, stop_token_ids=(t_close,))
        outs = engine.two_stage(prompts, th, answer_params(tok, max_answer), [t_close]) if b > 0 else None
        if outs is None:
            texts = _answers(engine, tok, [p + [t_close] for p in prompts], max_answer)
            spent = [0] * len(problems)
        else:
            texts = [tok.decode(o[0].suffix.token_ids) for o in outs]
            spent = [len(o[0].thought.token_ids) for o in outs]
        oks = [is_correct(p.answer, t) for p, t in zip(problems, texts)]
        rows.append(_row("verbal", b, spent, oks, split))
        if b == max(budgets):
            samples += [
                {
                    "interface": "verbal",
                    "budget": b,
                    "question": p.question,
                    "gold": p.answer,
                    "output": t,
                    "correct": ok,
                }
                for p, t, ok in zip(problems, texts, oks)
            ]
    return rows, samples


def no_thought(engine, tok, problems, max_answer, split="eval") -> list[dict]:
    t_open, t_close = think_ids_of(tok)
    texts = _answers(engine, tok, [prompt_ids(tok, p) + [t_open, t_close] for p in problems], max_answer)
    return [
        _row("no_thought", 0, [0] * len(problems), [is_correct(p.answer, t) for p, t in zip(problems, texts)], split)
    ]


def abstract(
    engine,
    tok,
    problems,
    n_vocab,
    budgets,
    max_answer,
    seed,
    split="eval",
    temperature: float = 0.7,
    min_tokens: int = 0,
) -> tuple[list[dict], list[dict]]:
    """Abstract thoughts capped at each budget (at least min(min_tokens, budget) tokens before the end
    marker may come), sampled at `temperature` as the Abstract-CoT card decodes them (greedy picks
    the end marker whenever the sequences carry no information yet), then a greedy answer; plus the
    ablations at the largest budget: random abstract tokens of the same lengths (from the tokens the
    model emitted there), and none at all."""
    abs_ids, a_open, a_close = ab.ids(tok, n_vocab)
    prompts = [prompt_ids(tok, p) + [a_open] for p in problems]
    rows, samples, last = [], [], []
    for b in budgets:
        zs = ab.sample_after(engine, tok, prompts, n_vocab, min_tokens, b, temperature, seed)
        texts = _answers(engine, tok, [q + z + [a_close] for q, z in zip(prompts, zs)], max_answer)
        oks = [is_correct(p.answer, t) for p, t in zip(problems, texts)]
        rows.append(_row("abstract", b, [len(z) for z in zs], oks, split))
        last = zs
        if b == max(budgets):
            samples += [
                {
                    "interface": "abstract",
                    "budget": b,
                    "question": p.question,
                    "gold": p.answer,
                    "output": t,
                    "abstract": tok.decode(z),
                    "correct": ok,
                }
                for p, t, z, ok in zip(problems, texts, zs, oks)
            ]
    # same lengths, drawn from the tokens the model itself emitted at that cap: the whole vocabulary would
    # bring in rows it never trained, which broke the answers' form (parity-12: 19%, under chance)
    pool = sorted({t for z in last for t in z}) or abs_ids
    rand = [ab.random_sequences(1, len(z), pool, seed + i)[0] for i, z in enumerate(last)]
    b = max(budgets)
    for name, zs in (("abstract_random", rand), ("abstract_none", [[] for _ in problems])):
        texts = _answers(engine, tok, [q + z + [a_close] for q, z in zip(prompts, zs)], max_answer)
        rows.append(
            _row(
                name,
                b if name == "abstract_random" else 0,
                [len(z) for z in zs],
                [is_correct(p.answer, t) for p, t in zip(problems, texts)],
                split,
            )
        )
    return rows, samples


def continuous(engine, tok, problems, head, steps_list, max_answer, split="eval") -> tuple[list[dict], list[dict]]:
    """Answers after each number of latent steps; 0 steps is the ablation (the same model, no latents)."""
    from thinkmid.engines.hf import generate_latent

    t_open, t_close = think_ids_of(tok)
    prompts = [prompt_ids(tok, p) + [t_open] for p in problems]
    rows, samples = [], []
    for k in steps_list:
        outs = generate_latent(engine, prompts, head, k, [t_close], answer_params(tok, max_answer))
        texts = [tok.decode(o[0].token_ids) for o in outs]
        oks = [is_correct(p.answer, t) for p, t in zip(problems, texts)]
        rows.append(_row("continuous" if k else "continuous_zero", k, [k] * len(problems), oks, split))
        if k == max(steps_list):
            samples += [
                {
                    "interface": "continuous",
                    "budget": k,
                    "question": p.question,
                    "gold": p.answer,
                    "output": t,
                    "correct": ok,
                }
                for p, t, ok in zip(problems, texts, oks)
            ]
    return rows, samples


def headline(rows: list[dict], interface: str) -> dict:
    """The arm's summary numbers: accuracy and thought tokens at its largest budget."""
    mine = [r for r in rows if r["interface"] == interface]
    best = max(mine, key=lambda r: r["budget"])
    return {"accuracy": best["accuracy"], "thought_tokens": best["thought_tokens"], "eval_problems": best["n"]}
