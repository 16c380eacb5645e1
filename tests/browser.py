"""Headless Chromium for tests: render a page served on 127.0.0.1, return its DOM, save a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]


def chromium_or_skip() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on this machine (scripts/install.sh installs Debian's chromium)")


def wait_http(url: str, timeout_s: float = 90) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s}s")
        time.sleep(0.5)


def render_page(chrome: str, url: str, screenshot: Path, health: str | None = None, budget_ms: int = 20000) -> str:
    if health:
        wait_http(health)
    with tempfile.TemporaryDirectory() as profile:
        common = [chrome, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}"]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
        subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, timeout=180)
    return dom
