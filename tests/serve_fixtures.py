"""A real `transformers serve` on 127.0.0.1 serving the tiny Qwen3 (no fake servers in tests).

Import `tiny_server` into a test module or conftest. Every importer shares ONE process (started on
first use, stopped when the last user's session teardown runs), so the ~10 s start is paid once.
"""

from __future__ import annotations

import shutil

import pytest

# A minimal chat template: the tiny tokenizer has none, and /v1/chat/completions needs one.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

_shared = {"server": None, "users": 0}


def serve_dir(src, dst):
    """Copy a model dir and give its tokenizer a chat template."""
    shutil.copytree(src, dst)
    (dst / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return dst


@pytest.fixture(scope="session")
def tiny_server(tiny_model_dir, tmp_path_factory):
    from thinkmid.engines.launcher import LocalServer

    if _shared["server"] is None or not _shared["server"].alive():
        root = tmp_path_factory.mktemp("served")
        path = serve_dir(tiny_model_dir, root / "tiny")
        _shared["server"] = LocalServer(
            "transformers", path, startup_timeout_s=180, extra_args=["--device", "cpu"], log_path=root / "server.log"
        ).start()
    _shared["users"] += 1
    yield _shared["server"]
    _shared["users"] -= 1
    if _shared["users"] == 0:
        _shared["server"].stop()
        _shared["server"] = None
