"""thinkmid.track helpers that the reliability tests do not cover."""


def test_secret_scan_survives_a_variable_removed_while_reading(monkeypatch):
    """MLflow's telemetry thread deletes a variable; iterating os.environ then raises KeyError once."""
    import os

    from thinkmid import track

    monkeypatch.setenv("THINKMID_TEST_API_KEY", "s3cr3t-value-123")
    real = os.environ.items
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("_MLFLOW_TELEMETRY_SESSION_ID")
        return real()

    monkeypatch.setattr(os.environ, "items", flaky)
    assert track.scrub("key=s3cr3t-value-123") == "key=***" and calls["n"] == 2
