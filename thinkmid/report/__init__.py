"""Results regenerated from artifacts: RESULTS.md tables, summary.json headline numbers, PNG plots."""

from thinkmid.report.inputs import REQUIRED, Inputs, input_paths, load_inputs
from thinkmid.report.results import build_summary, flat_metrics, render_results

__all__ = ["REQUIRED", "Inputs", "build_summary", "flat_metrics", "input_paths", "load_inputs", "render_results"]
