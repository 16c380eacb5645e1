"""The optimizer and schedule keys every training section shares (thinkmid/train/optim.py reads them).

Each key's bounds are declared once, here, as a bounded type. OptimParams holds the keys with their
most common defaults; a section extends it and re-declares only a default it changes, with the same
bounded type, so the bounds (and the schema's error messages) stay those of one declaration.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from thinkmid.config.section import Section

LearningRate = Annotated[float, Field(gt=0)]
WarmupSteps = Annotated[int, Field(ge=0)]
MinLrRatio = Annotated[float, Field(ge=0, le=1)]
MaxGradNorm = Annotated[float, Field(gt=0)]
CheckpointEvery = Annotated[int, Field(ge=1)]


class OptimParams(Section):
    warmup_steps: WarmupSteps = 2
    min_lr_ratio: MinLrRatio = 0.1  # the floor of the cosine schedule, as a fraction of lr
    max_grad_norm: MaxGradNorm = 1.0
    checkpoint_every: CheckpointEvery = 2  # optimizer steps between resumable checkpoints
