"""Knowledge gates: a sigmoid gate on every MLP intermediate neuron, trained so that closing gates
removes entity knowledge while a distillation loss keeps the rest of the model's behaviour
(reference/lambda-gates-card.txt). Used as a probe of where knowledge sits in each lifecycle arm.

  gating.py   the gates themselves: hooks on each MLP's down_proj input, rescale modes, thresholds,
              statistics, safetensors files
  data.py     knowledge text with entity spans (Factbook facts / PopQA) and reasoning text
              (shipped GSM8K solutions / NuminaMath-CoT), disjoint from the eval splits
  train.py    forget and retain losses, deterministic resumable batches, one training step
  probe.py    entity-knowledge and GSM8K accuracy of a gated model at each off-fraction
  overlap.py  Jaccard overlap of knowledge-neuron sets between arms and per layer
"""

from thinkmid.config.arms import ARMS_RLMT, ARMS_SFT

# The display order of the default arms (params.yaml's knowledge_gates.arms says which run).
ARMS = ("base", *ARMS_SFT, *(f"{a}_rlmt" for a in ARMS_RLMT))
