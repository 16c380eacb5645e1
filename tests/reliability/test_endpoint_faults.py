"""Endpoint faults: a real `transformers serve` killed and restarted while an endpoint judge is judging a
batch; a server that accepts and never answers; 5xx then 200; malformed and empty bodies. Every item
gets a verdict, invalid ones are counted (never guessed), retries are counted and bounded."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from thinkmid.engines.openai import HTTPClient
from thinkmid.judges.base import check_invalid_rate
from thinkmid.judges.endpoint import EndpointPairwiseJudge, EndpointReferenceJudge
from thinkmid.judges.parse import parse_winner

ITEMS = [
    ("The river rises in the hills and", " flows to the sea.", " is blue."),
    ("In 1990 the population was", " two million.", " very."),
    ("The coast is rocky in the north,", " with sandy bays in the south.", " and and and."),
    ("Exports are mainly", " timber, fish and machinery.", " the."),
]


def _judge(url, model=None, timeout_s=30.0, retries=2, backoff_s=0.05, concurrency=2, cls=EndpointPairwiseJudge):
    return cls(HTTPClient(url, None, timeout_s, retries, backoff_s, concurrency), model, max_tokens=12)


def test_judge_survives_real_server_kill_and_restart(tiny_server):
    # enough backoff (~4 min in all) for a restart on a loaded 2-core machine; it stops at the first answer
    judge = _judge(tiny_server.base_url, tiny_server.served_model, retries=9, backoff_s=0.5)
    answered, first = [0], threading.Event()
    real_post = judge.client.post

    def counting_post(path, body):
        out = real_post(path, body)
        answered[0] += 1
        first.set()
        return out

    judge.client.post = counting_post
    items, result = ITEMS * 6, {}
    worker = threading.Thread(target=lambda: result.update(v=judge.judge_pairs(items)))
    worker.start()
    try:
        assert first.wait(120), "the server answered nothing"
        os.killpg(tiny_server.proc.pid, signal.SIGKILL)  # hard kill mid-batch: in-flight requests drop
        at_kill = answered[0]
        tiny_server.restart()
    finally:
        worker.join(timeout=300)
    assert not worker.is_alive(), "the judge call did not complete"
    assert at_kill < len(items)  # the kill really landed mid-batch
    verdicts = result["v"]
    assert len(verdicts) == len(items) == judge.stats.calls
    valid = [v for v in verdicts if v.valid]
    assert len(valid) + judge.stats.invalid == len(items)  # counts add up
    assert judge.stats.retries > 0  # the dropped requests were retried, and counted
    for v in verdicts:
        if v.valid:
            assert parse_winner(v.raw) == v.winner  # a winner only ever comes from a parsed answer
        else:
            assert v.winner is None and v.error  # invalid, with the reason, never a guessed A/B
            assert "attempts" not in v.error  # after the restart every request got an answer


@contextmanager
def silent_server():
    """127.0.0.1: accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    conns, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()


def test_timeouts_are_bounded_then_invalid():
    timeout, retries, backoff = 0.5, 2, 0.05
    with silent_server() as url:
        judge = _judge(url, timeout_s=timeout, retries=retries, backoff_s=backoff, concurrency=2)
        t0 = time.monotonic()
        verdicts = judge.judge_pairs(ITEMS[:2])
        elapsed = time.monotonic() - t0
    bound = timeout * (retries + 1) + backoff * (2**retries - 1)
    assert timeout * (retries + 1) <= elapsed < bound + 1.5, elapsed  # requests of a batch run in parallel
    assert [v.winner for v in verdicts] == [None, None]
    assert all("ReadTimeout" in v.error and f"{retries + 1} attempts" in v.error for v in verdicts)
    assert judge.stats.invalid == 2 and judge.stats.retries == 2 * retries


class Scripted(BaseHTTPRequestHandler):
    """Answers POSTs from a script of (status, body) and then repeats the last entry."""

    script: list[tuple[int, bytes]] = []
    seen: list[str] = []

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        cls = type(self)
        status, body = cls.script[min(len(cls.seen), len(cls.script) - 1)]
        cls.seen.append(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def scripted_server(script):
    handler = type("H", (Scripted,), {"script": script, "seen": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1", handler
    finally:
        srv.shutdown()
        srv.server_close()


def chat(content) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


def test_5xx_then_200_is_retried_to_a_valid_verdict():
    with scripted_server([(500, b"boom"), (503, b"busy"), (200, chat('{"winner": "B"}'))]) as (url, h):
        judge = _judge(url, concurrency=1)
        [v] = judge.judge_pairs(ITEMS[:1])
    assert v.winner == "B" and judge.stats.retries == 2 and judge.stats.invalid == 0 and len(h.seen) == 3


def test_persistent_5xx_gives_up_after_bounded_retries():
    with scripted_server([(502, b"bad gateway")]) as (url, h):
        judge = _judge(url, retries=3, concurrency=1)
        [v] = judge.judge_pairs(ITEMS[:1])
    assert v.winner is None and "HTTP 502" in v.error and "4 attempts" in v.error
    assert len(h.seen) == 4 and judge.stats.retries == 3 and judge.stats.invalid == 1


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops",
        b"",
        b'{"choices": []}',
        b'{"choices": [{"message": {}}]}',
        chat("A is clearly better"),
        chat('{"winner": "C"}'),
        chat(None),
        chat('{"winner": "A"} {"winner": "B"}'),
    ],
    ids=["html", "empty", "no-choices", "no-content", "prose", "bad-value", "null", "two-objects"],
)
def test_malformed_or_empty_bodies_are_invalid_not_guessed(body):
    with scripted_server([(200, body)]) as (url, _):
        pair = _judge(url, concurrency=1)
        ref = _judge(url, concurrency=1, cls=EndpointReferenceJudge)
        [v] = pair.judge_pairs(ITEMS[:1])
        [m] = ref.judge(ITEMS[:1])
    assert v.winner is None and v.error and pair.stats.invalid == 1 and pair.stats.calls == 1
    assert m is None and ref.last_errors[0] and ref.stats.invalid == 1
    assert pair.stats.retries == 0  # a 200 with a bad body is an answer, not a transport fault


def test_invalid_rate_above_threshold_stops_with_a_clear_error():
    script = [(200, chat('{"winner": "A"}'))] + [(200, b"garbage")] * 3
    with scripted_server(script) as (url, _):
        judge = _judge(url, concurrency=1)
        for item in ITEMS:  # one at a time so the script order holds
            judge.judge_pairs([item])
    assert judge.stats.calls == 4 and judge.stats.invalid == 3
    check_invalid_rate(judge.stats, 0.75, "self_improve pairwise judge")  # at the threshold: fine
    with pytest.raises(RuntimeError) as e:
        check_invalid_rate(judge.stats, 0.5, "self_improve pairwise judge")
    msg = str(e.value)
    assert "self_improve pairwise judge: 3/4 judge verdicts invalid (75.0%) > max_invalid_rate 50.0%" in msg
    assert "\n" not in msg
