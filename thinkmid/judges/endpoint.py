"""Judges over an OpenAI-compatible chat API (/v1/chat/completions; temperature 0 unless the params
give the judge's decoding, e.g. the seed's T 0.7 / top_p 0.6 in the paper profile).

The model must answer a strict JSON verdict (see parse.py). Transport failures are retried by the
shared HTTPClient; what still fails, and every answer that does not parse, becomes an invalid
verdict counted in `stats` (never raised), so a stage decides with check_invalid_rate.
"""

from __future__ import annotations

from thinkmid.engines.openai import EndpointError, HTTPClient
from thinkmid.judges.base import JudgeStats, Verdict
from thinkmid.judges.parse import (
    VerdictError,
    load_prompt,
    parse_match,
    parse_score_lenient,
    parse_winner,
    render,
)

_FROM_PARAMS = object()


class _ChatJudge:
    def __init__(
        self,
        client: HTTPClient,
        model: str | None,
        prompt: str,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ):
        self.client, self.model, self.max_tokens = client, model, max_tokens
        self.temperature, self.top_p = temperature, top_p
        self.template = load_prompt(prompt)
        self.stats = JudgeStats()
        self.server = None  # the servers.Handle it talks to, when built for a stage

    @classmethod
    def from_params(cls, endpoint, concurrency: int = 8, model=_FROM_PARAMS, server=None, role: str = "judge", **kw):
        """`server`: the servers.Handle of the role's local server (its URL and request model name);
        without one, endpoint.base_url, or the role's default local port when that is unset.
        `model` overrides the request's model field (None leaves it out, for `transformers serve`)."""
        if server is not None:
            url = server.base_url
        elif endpoint.base_url is not None:
            url = endpoint.base_url
        else:
            from thinkmid.engines.servers import ROLE_PORTS

            url = f"http://127.0.0.1:{endpoint.server.port or ROLE_PORTS[role]}/v1"
        client = HTTPClient(
            url, endpoint.api_key_env, endpoint.timeout_s, endpoint.max_retries, endpoint.backoff_s, concurrency
        )
        if model is _FROM_PARAMS:
            if server is not None:
                model = server.served_model
            else:
                pinned = getattr(getattr(endpoint, "server", None), "launch", "none") == "transformers"
                model = None if pinned else endpoint.model
        judge = cls(client, model, **kw)
        judge.server = server
        return judge

    def _ask(self, prompts: list[str]) -> list[tuple[str | None, str | None]]:
        """(answer text, transport error) per prompt."""
        bodies = []
        for p in prompts:
            body = {
                "messages": [{"role": "user", "content": p}],
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
            if self.top_p < 1.0:
                body["top_p"] = self.top_p
            if self.model is not None:
                body["model"] = self.model
            bodies.append(body)
        before = self.client.retries
        results = self.client.post_many("/chat/completions", bodies)
        self.stats.retries += self.client.retries - before
        out = []
        for res in results:
            if isinstance(res, EndpointError):
                out.append((None, str(res)))
                continue
            try:
                out.append((res["choices"][0]["message"]["content"] or "", None))
            except (KeyError, IndexError, TypeError):
                out.append((None, f"unexpected response shape: {str(res)[:200]}"))
        return out

    def close(self) -> None:
        self.client.close()


class EndpointPairwiseJudge(_ChatJudge):
    def __init__(
        self,
        client: HTTPClient,
        model: str | None,
        prompt: str = "pairwise_quality",
        max_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ):
        super().__init__(client, model, prompt, max_tokens, temperature, top_p)

    def judge_pairs(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        answers = self._ask([render(self.template, prefix=p, a=a, b=b) for p, a, b in items])
        out = []
        for text, err in answers:
            if err is None:
                try:
                    out.append(Verdict(parse_winner(text), text))
                    continue
                except VerdictError as e:
                    err = str(e)
            out.append(Verdict(None, text or "", err))
            self.stats.invalid += 1
        self.stats.calls += len(items)
        return out


class EndpointReferenceJudge(_ChatJudge):
    """`last_lenient`: the same answers read the seed's lenient way (parse.parse_score_lenient)."""

    def __init__(
        self,
        client: HTTPClient,
        model: str | None,
        prompt: str = "reference_match",
        max_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ):
        super().__init__(client, model, prompt, max_tokens, temperature, top_p)
        self.last_errors: list[str | None] = []
        self.last_lenient: list[int | None] = []

    def judge(self, items: list[tuple[str, str, str]]) -> list[int | None]:
        prompts = [render(self.template, prefix=p, predicted=pr, reference=r) for p, pr, r in items]
        out: list[int | None] = []
        self.last_errors, self.last_lenient = [], []
        for text, err in self._ask(prompts):
            self.last_lenient.append(parse_score_lenient(text) if err is None else None)
            if err is None:
                try:
                    out.append(parse_match(text))
                    self.last_errors.append(None)
                    continue
                except VerdictError as e:
                    err = str(e)
            out.append(None)
            self.last_errors.append(err)
            self.stats.invalid += 1
        self.stats.calls += len(items)
        return out
