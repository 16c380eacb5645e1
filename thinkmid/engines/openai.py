"""Generation over any OpenAI-compatible server (SGLang, vLLM, `transformers serve`), via httpx.

`HTTPClient` is the one place for HTTP retries (the endpoint judges use it too): bounded retries
with exponential backoff on timeouts, refused/dropped connections, 429 and 5xx; then EndpointError.
Requests of a batch run in parallel on a bounded thread pool.

`OpenAIEngine` speaks /v1/completions in the first dialect the server accepts:
  * "extended" (SGLang, vLLM): the prompt as token ids, `stop_token_ids`, `logprobs`, `n`;
  * "transformers" (`transformers serve`): text prompt plus a `generation_config` JSON, which makes
    it sample (do_sample) and stop on our stop ids;
  * "plain": text prompt, standard fields only; stop ids are applied by truncating locally.
Token ids come from the response when the server returns them, else by re-tokenizing the text; the
log-probs are zeros when the server gives none, and `has_logprobs` turns False.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx

from thinkmid.engines.base import Completion, SamplingParams

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
DIALECTS = ("extended", "transformers", "plain")


class EndpointError(RuntimeError):
    """An endpoint request failed for good (after retries, or a non-retryable 4xx)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _scrub(text: str) -> str:
    try:
        from thinkmid.track import scrub
    except Exception:  # tracking deps missing: nothing to scrub with
        return text
    return scrub(text)


def _register_secret(value: str) -> None:
    try:
        from thinkmid.track import register_secret
    except Exception:  # tracking deps missing: nothing is logged either
        return
    register_secret(value)


class HTTPClient:
    """POST JSON with bounded retries; `retries` counts every retry made (for judge stats)."""

    def __init__(
        self,
        base_url: str,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        concurrency: int = 8,
    ):
        self.base_url = base_url.rstrip("/")
        self.max_retries, self.backoff_s, self.concurrency = max_retries, backoff_s, max(1, concurrency)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None  # the key only ever comes from the env
        if key:
            headers["Authorization"] = f"Bearer {key}"
            _register_secret(key)  # scrubbed from errors even when the env var's name looks harmless
        self._http = httpx.Client(
            timeout=timeout_s, headers=headers, limits=httpx.Limits(max_connections=self.concurrency)
        )
        self._lock = threading.Lock()
        self.retries = 0

    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def post(self, path: str, body: dict) -> dict:
        url = self.url(path)
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.retries += 1
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                r = self._http.post(url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:  # refused, reset, timed out
                last = f"{type(e).__name__}: {e}"
                continue
            if r.status_code in RETRYABLE_STATUS:
                last = f"HTTP {r.status_code}: {r.text[:300]}"
                continue
            if r.status_code >= 400:
                raise EndpointError(_scrub(f"POST {url} -> HTTP {r.status_code}: {r.text[:500]}"), r.status_code)
            try:
                return r.json()
            except ValueError:
                raise EndpointError(_scrub(f"POST {url} -> not JSON: {r.text[:300]!r}"), r.status_code) from None
        raise EndpointError(_scrub(f"POST {url} failed after {self.max_retries + 1} attempts: {last}"))

    def post_many(self, path: str, bodies: list[dict]) -> list[dict | EndpointError]:
        """All requests in parallel (bounded); a failure comes back as its EndpointError, in place."""

        def one(body):
            try:
                return self.post(path, body)
            except EndpointError as e:
                return e

        if len(bodies) <= 1:
            return [one(b) for b in bodies]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies))) as pool:
            return list(pool.map(one, bodies))

    def close(self) -> None:
        self._http.close()


class OpenAIEngine:
    def __init__(
        self,
        base_url: str,
        model: str | None,
        tokenizer,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        concurrency: int = 8,
        server=None,
        dialect: str | None = None,
    ):
        self.client = HTTPClient(base_url, api_key_env, timeout_s, max_retries, backoff_s, concurrency)
        self.model = model  # None: leave the field out (servers pinned to one model)
        self.tokenizer = tokenizer
        self.server = server  # a servers.Handle (or LocalServer): weights reload by restart when it is ours
        self._weights_dir: str | None = None  # sync()'s scratch copy of the trained weights
        self.synced = False
        if dialect is not None and dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}")
        self.dialect = dialect  # found on the first request when None
        self.has_logprobs = True

    @classmethod
    def from_params(cls, endpoint, tokenizer, server=None, concurrency: int = 8) -> OpenAIEngine:
        """`server`: the servers.Handle (or LocalServer) the engine talks to; else endpoint.base_url."""
        model = server.served_model if server is not None else endpoint.model
        base_url = server.base_url if server is not None else endpoint.base_url
        return cls(
            base_url,
            model,
            tokenizer,
            endpoint.api_key_env,
            endpoint.timeout_s,
            endpoint.max_retries,
            endpoint.backoff_s,
            concurrency,
            server,
        )

    # -- requests -----------------------------------------------------------------------------

    def _body(self, dialect: str, prompt: list[int], p: SamplingParams, n: int, seed: int) -> dict:
        body = {"max_tokens": p.max_new_tokens, "temperature": p.temperature, "top_p": p.top_p, "seed": seed}
        if self.model is not None:
            body["model"] = self.model
        if dialect == "extended":
            body.update(
                prompt=prompt,
                n=n,
                logprobs=1,
                skip_special_tokens=False,
                ignore_eos=True,
                return_token_ids=True,
                return_tokens_as_token_ids=True,
            )  # like HFEngine: stop only on our ids
            if p.stop_token_ids:
                body["stop_token_ids"] = list(p.stop_token_ids)
            return body
        body["prompt"] = self.tokenizer.decode(prompt, skip_special_tokens=False)
        if dialect == "transformers":
            cfg = {
                "max_new_tokens": p.max_new_tokens,
                "do_sample": p.temperature > 0,
                "eos_token_id": list(p.stop_token_ids) or None,
                "pad_token_id": self._pad_id(),
            }
            if p.temperature > 0:
                cfg.update(temperature=p.temperature, top_p=p.top_p)
            body["generation_config"] = json.dumps(cfg)  # replaces the model's defaults entirely
        return body

    def _pad_id(self):
        t = self.tokenizer
        return t.pad_token_id if t.pad_token_id is not None else t.eos_token_id

    def _detect(self, prompt: list[int], p: SamplingParams) -> None:
        """Try the dialects in order on a one-token request; a 400/422 means "not this one"."""
        errors = []
        probe = replace(p, max_new_tokens=1, n=1)
        for d in DIALECTS:
            try:
                self.client.post("/completions", self._body(d, prompt, probe, 1, p.seed))
            except EndpointError as e:
                if e.status in (400, 422):
                    errors.append(f"{d}: {e}")
                    continue
                raise
            self.dialect = d
            return
        raise EndpointError("server accepted no completions dialect:\n" + "\n".join(errors), 400)

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        if not prompts:
            return []
        if self.dialect is None:
            self._detect(list(prompts[0]), params)
        # servers without `n` get one request per sample, each with its own seed
        per_req = params.n if self.dialect == "extended" else 1
        jobs = [(i, j) for i in range(len(prompts)) for j in range(0, params.n, per_req)]
        bodies = [
            self._body(self.dialect, list(prompts[i]), params, per_req, params.seed * 1_000_003 + i * 997 + j)
            for i, j in jobs
        ]
        results = self.client.post_many("/completions", bodies)
        out: list[list[Completion]] = [[] for _ in prompts]
        for (i, _), res in zip(jobs, results):
            if isinstance(res, EndpointError):
                raise res
            out[i].extend(self._completion(c, params) for c in res.get("choices", []))
        for i, comps in enumerate(out):
            while len(comps) < params.n:  # a server that ignored `n`: top up one sample at a time
                seed = params.seed * 1_000_003 + i * 997 + len(comps) + 7919
                res = self.client.post("/completions", self._body(self.dialect, list(prompts[i]), params, 1, seed))
                comps.extend(self._completion(c, params) for c in res.get("choices", [])[:1] or [{}])
            del comps[params.n :]
        return out

    def _completion(self, choice: dict, p: SamplingParams) -> Completion:
        text = choice.get("text") or ""
        lp = choice.get("logprobs") or {}
        ids = choice.get("token_ids")
        if ids is None and lp.get("tokens") and all(str(t).startswith("token_id:") for t in lp["tokens"]):
            ids = [int(str(t).split(":", 1)[1]) for t in lp["tokens"]]
        if ids is None:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        ids = [int(t) for t in ids]
        logprobs = lp.get("token_logprobs")
        finish = "stop" if choice.get("finish_reason") == "stop" else "length"
        stop = set(p.stop_token_ids)
        if stop and self.dialect != "extended":
            ids, finish = self._apply_stop(ids, finish, p)
        if finish == "stop" and stop and (not ids or ids[-1] not in stop) and self.dialect == "extended":
            matched = choice.get("matched_stop")  # SGLang/vLLM drop the stop token from the output
            ids.append(int(matched) if isinstance(matched, int) and matched in stop else p.stop_token_ids[0])
            if logprobs is not None:
                logprobs = list(logprobs) + [0.0]
        if logprobs is None or len(logprobs) != len(ids) or any(x is None for x in logprobs):
            self.has_logprobs = False
            logprobs = [0.0] * len(ids)
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        return Completion(token_ids=ids, logprobs=[float(x) for x in logprobs], finish_reason=finish, text=text)

    def _apply_stop(self, ids: list[int], finish: str, p: SamplingParams) -> tuple[list[int], str]:
        """Text-only dialects: cut at the first stop id; a server that stopped on one but dropped it
        from the text (special tokens are skipped when decoding) gets it back."""
        stop = set(p.stop_token_ids)
        for k, t in enumerate(ids):
            if t in stop:
                return ids[: k + 1], "stop"
        if finish == "stop" and self.dialect == "transformers":  # it only stops on our stop ids
            return ids + [p.stop_token_ids[0]], "stop"  # ambiguous with several stop ids: the first
        return ids[: p.max_new_tokens], finish

    # -- weights ------------------------------------------------------------------------------

    def sync(self, model, tokenizer) -> None:
        """Bring the server up to date with `model` (the weights being trained): save them to this
        engine's scratch dir, then update_weights on it."""
        import tempfile

        from thinkmid.models.load import save_model

        if self._weights_dir is None:
            self._weights_dir = tempfile.mkdtemp(prefix="thinkmid-policy-", dir=os.environ.get("THINKMID_WEIGHTS_DIR"))
        save_model(model, tokenizer, self._weights_dir)
        self.update_weights(self._weights_dir)
        self.synced = True

    def update_weights(self, model_dir: str) -> None:
        """SGLang: POST /update_weights_from_disk (in place, no restart). Servers without it (vLLM,
        `transformers serve`) are restarted on `model_dir`, which only a server this process started
        can be; otherwise EndpointError: an external server's weights cannot be changed from here."""
        root = self.client.base_url.removesuffix("/v1")
        try:
            res = self.client.post(f"{root}/update_weights_from_disk", {"model_path": str(model_dir)})
        except EndpointError as e:
            proc = self._process()
            if e.status not in (404, 405) or proc is None:
                raise EndpointError(f"cannot update weights on {root}: {e}", e.status) from None
            proc.restart(model_path=model_dir)
            return
        if isinstance(res, dict) and res.get("success") is False:
            raise EndpointError(f"update_weights_from_disk({model_dir}) failed: {res.get('message')}")

    def _process(self):
        """The LocalServer behind this engine when this process owns it (a restart reloads weights)."""
        srv = self.server
        if srv is None:
            return None
        if hasattr(srv, "restart"):
            return srv
        return srv.server if getattr(srv, "owned", False) else None

    def close(self) -> None:
        """An attached SGLang server that took our weights gets its own model back; scratch weights go."""
        try:
            spec = getattr(self.server, "spec", None)
            if self.synced and spec is not None and not self.server.owned:
                self.update_weights(spec.model)
        finally:
            self.client.close()
            if self._weights_dir is not None:
                import shutil

                shutil.rmtree(self._weights_dir, ignore_errors=True)
                self._weights_dir = None
