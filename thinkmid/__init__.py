"""thinkmid: a declarative, reproducible lab for thinking mid-training of small language models."""

__version__ = "0.1.0"

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
