"""The whole params file: its sections, cross-section checks, and loading with file:line errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from thinkmid.config.arms import ArmsParams, check
from thinkmid.config.data import BaseModelParams, ChunkParams, PrefixParams, TeacherParams
from thinkmid.config.engines import EngineParams, JudgeParams
from thinkmid.config.evals import (
    EvalContinuationsParams,
    ReasoningEvalParams,
    RewardGateParams,
    ThoughtProbeParams,
)
from thinkmid.config.section import Section
from thinkmid.config.thoughts import KnowledgeGatesParams, ThoughtsParams
from thinkmid.config.training import RlmtParams, SelfImproveParams, SftParams
from thinkmid.errors import InputError

PARAMS_FILE = os.environ.get("THINKMID_PARAMS", "params.yaml")


class TrackingParams(Section):
    experiment: str = "thinkmid"


class Params(Section):
    profile: str = "embedded"
    seed: int = 0
    lr: float = Field(1e-7, gt=0, description="RLMT learning rate (top level for `dvc exp run -S lr=`)")
    arms: ArmsParams = ArmsParams()
    base: BaseModelParams = BaseModelParams()
    chunks: ChunkParams = ChunkParams()
    engine: EngineParams = EngineParams()
    judge: JudgeParams = JudgeParams()
    reference_judge: JudgeParams = JudgeParams(backend="lexical")
    self_improve: SelfImproveParams = SelfImproveParams()
    eval_continuations: EvalContinuationsParams = EvalContinuationsParams()
    teacher_thoughts: TeacherParams = TeacherParams()
    sft: SftParams = SftParams()
    rlmt: RlmtParams = RlmtParams()
    prefixes: PrefixParams = PrefixParams()
    reward_gate: RewardGateParams = RewardGateParams()
    thought_probe: ThoughtProbeParams = ThoughtProbeParams()
    reasoning_eval: ReasoningEvalParams = ReasoningEvalParams()
    thoughts: ThoughtsParams = ThoughtsParams()
    tracking: TrackingParams = TrackingParams()
    knowledge_gates: KnowledgeGatesParams = KnowledgeGatesParams()

    @model_validator(mode="after")
    def _context(self):
        need = self.chunks.prefix_tokens + self.rlmt.thought_max_tokens + self.rlmt.suffix_max_tokens + 2
        if need > self.base.max_context:
            raise ValueError(
                f"chunks.prefix_tokens + rlmt.thought_max_tokens + rlmt.suffix_max_tokens + 2 = {need} "
                f"exceeds base.max_context ({self.base.max_context})"
            )
        if self.sft.seq_len > self.base.max_context:
            raise ValueError(f"sft.seq_len ({self.sft.seq_len}) exceeds base.max_context ({self.base.max_context})")
        return self

    @model_validator(mode="after")
    def _gates(self):
        g = self.knowledge_gates
        check("knowledge_gates.arms", g.arms, self.arms.models())
        if g.seq_len > self.base.max_context:
            raise ValueError(
                f"knowledge_gates.seq_len ({g.seq_len}) exceeds base.max_context ({self.base.max_context})"
            )
        if g.reasoning_source == "gsm8k" and self.reasoning_eval.gsm8k.limit is None:
            raise ValueError(
                "knowledge_gates.reasoning_source gsm8k trains on the GSM8K rows that "
                "reasoning_eval.gsm8k does not score, but its limit selects all of them; set "
                "reasoning_eval.gsm8k.limit or use reasoning_source: numina"
            )
        return self


def _line_index(text: str) -> dict[tuple, int]:
    """Map each key path in the YAML to its 1-based line, for error messages."""
    index: dict[tuple, int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (k.value,)
                index[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                index[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    try:
        walk(yaml.compose(text), ())
    except yaml.YAMLError:
        pass
    return index


def parse_params(text: str, source: str = PARAMS_FILE) -> Params:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise InputError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{source}: expected a mapping of sections at the top level")
    if "extends" in raw:  # a profile overlay alone would silently take schema defaults for all it leaves out
        raise InputError(
            f"{source}: a profile overlay of profiles/{raw['extends']}.yaml, not a full params file; "
            "write it merged with `python -m thinkmid.profile <name>` (or thinkmid.profile.load_profile)"
        )
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = _line_index(text)

        def _loc(err) -> tuple:
            return tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))

        def _line(loc: tuple) -> int | None:
            return next((lines[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in lines), None)

        # Name the error that comes first in the file, not first in the schema: a section's shared keys
        # (config/optim.py) are declared before its own, in the schema, but not in params.yaml.
        err = min(e.errors(), key=lambda x: _line(_loc(x)) or float("inf"))
        loc = _loc(err)
        key = ".".join(str(x) for x in loc) or "(top level)"
        line = _line(loc)
        where = f"{source}:{line}" if line else source
        msg = err["msg"]
        if err["type"] == "value_error":  # a cross-field check: point at the first key it names
            msg = msg.removeprefix("Value error, ")
            named = [tuple(k.split(".")) for k in re.findall(r"\b[a-z_]+(?:\.[a-z_]+)+\b", msg)]
            if named:  # the message names its keys itself
                line = next((lines[k] for k in named if k in lines), line)
                raise InputError(f"{source}:{line}: {msg}" if line else f"{source}: {msg}") from None
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see thinkmid/config/ for the schema)"
        elif "input" in err and err["type"] not in ("value_error",):
            msg = f"{msg} (got {err['input']!r})"
        more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise InputError(f"{where}: {key}: {msg}{more}") from None


def load_params(path: str | os.PathLike = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: params file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 at byte {e.start}") from None
    return parse_params(text, str(path))


def flatten(obj, prefix: str = "") -> dict[str, object]:
    """Flatten params to dotted keys (for MLflow params)."""
    data = obj.model_dump() if isinstance(obj, BaseModel) else obj
    out: dict[str, object] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
