"""The params schema: every stage validates params.yaml here before doing any work.

An unknown key, a wrong type or an out-of-range value raises one InputError naming the key, the
file:line it sits on and what was expected (stages turn it into exit code 2). One module per part of
the lifecycle (data, engines and judges, training, evals, thoughts and gates); `params` puts the
sections together and loads the file. Every name is importable from `thinkmid.config`.
"""

from thinkmid.config.arms import ARMS_GATE, ARMS_RLMT, ARMS_SFT, ArmsParams
from thinkmid.config.data import BaseModelParams, ChunkParams, PrefixParams, TeacherParams
from thinkmid.config.engines import EndpointParams, EngineParams, InprocessJudgeParams, JudgeParams, ServerParams
from thinkmid.config.evals import (
    GENERIC_THOUGHTS,
    BenchmarkParams,
    EvalContinuationsParams,
    ReasoningEvalParams,
    RewardGateParams,
    ThoughtProbeParams,
)
from thinkmid.config.params import PARAMS_FILE, Params, TrackingParams, _line_index, flatten, load_params, parse_params
from thinkmid.config.section import Section
from thinkmid.config.thoughts import (
    AbstractThoughtParams,
    ContinuousThoughtParams,
    KnowledgeGatesParams,
    ThoughtArmParams,
    ThoughtsParams,
    ThoughtTaskParams,
)
from thinkmid.config.training import RlmtParams, SelfImproveParams, SftParams

__all__ = [
    "PARAMS_FILE",
    "Params",
    "Section",
    "ArmsParams",
    "ARMS_SFT",
    "ARMS_RLMT",
    "ARMS_GATE",
    "parse_params",
    "load_params",
    "flatten",
    "_line_index",
    "BaseModelParams",
    "ChunkParams",
    "PrefixParams",
    "TeacherParams",
    "ServerParams",
    "EndpointParams",
    "EngineParams",
    "InprocessJudgeParams",
    "JudgeParams",
    "SelfImproveParams",
    "SftParams",
    "RlmtParams",
    "EvalContinuationsParams",
    "RewardGateParams",
    "GENERIC_THOUGHTS",
    "ThoughtProbeParams",
    "BenchmarkParams",
    "ReasoningEvalParams",
    "KnowledgeGatesParams",
    "ThoughtTaskParams",
    "ThoughtArmParams",
    "AbstractThoughtParams",
    "ContinuousThoughtParams",
    "ThoughtsParams",
    "TrackingParams",
]
