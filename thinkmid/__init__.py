"""thinkmid: a declarative, reproducible lab for thinking mid-training of small language models."""

__version__ = "0.1.0"

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ARMS_SFT = ("raw_base", "think_base", "think_phase3")
ARMS_RLMT = ("think_base", "think_phase3")
ARMS_GATE = ("think_base", "think_phase3", "think_base_rlmt", "think_phase3_rlmt")
