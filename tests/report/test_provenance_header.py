"""RESULTS.md opens with where it was produced (thinkmid/provenance.py)."""

from thinkmid.report import load_inputs, render_results


def test_results_page_opens_with_provenance(reports, monkeypatch):
    monkeypatch.setenv("THINKMID_FUSED_CE", "0")
    md = render_results(load_inputs(reports), "micro")
    assert md.startswith("# thinkmid results\n\nProduced by:\n\n- Commit: `")
    head = md.split("\n## ", 1)[0]  # before the first section
    assert "- Profile: `micro`" in head and "`THINKMID_FUSED_CE=0`" in head and "- Device: " in head
    assert head.index("Produced by:") < head.index("Every table below is regenerated")
