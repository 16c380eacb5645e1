"""In-process batched generation on a transformers model with a KV cache.

The prompt of a group is prefilled once and its cache repeated for the `n` samples; rows that finish
leave the batch (their cache rows are dropped), so late steps only pay for live rows.
Returned log-probs are of the model's own distribution (temperature 1, before top-p), i.e. what a
teacher-forced forward pass gives, which is what the RL ratio and KL need.
"""

from __future__ import annotations

import torch

from thinkmid.engines import fastgen
from thinkmid.engines.base import Completion, SamplingParams, TwoStageCompletion, two_stage


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None):
    """Sample one token per row; returns (tokens, log-probs of those tokens under the raw model)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    if temperature <= 0:
        tok = logp.argmax(-1)
    else:
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        if top_p < 1.0:
            # The nucleus lives in the head of the distribution: sort only the top candidates.
            k = min(probs.shape[-1], 1024)
            sorted_p, idx = probs.topk(k, dim=-1)
            if k < probs.shape[-1] and bool((sorted_p.sum(-1) < top_p).any()):
                sorted_p, idx = probs.sort(-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < top_p  # always keeps the top token
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter_(-1, idx, sorted_p)
        tok = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
    return tok, logp.gather(-1, tok[:, None]).squeeze(-1)


class HFEngine:
    def __init__(
        self,
        model,
        tokenizer,
        batch_size: int = 32,
        device: str | None = None,
        progress: bool = False,
        fast: bool | None = None,
    ):
        """fast: None = the static-cache path when the model is on CUDA and supported; True/False force it."""
        self.model = model
        self.fast = fast
        self._decoder = None
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.device = device or next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.progress = progress

    def update_weights(self, model_dir: str) -> None:
        from transformers import AutoModelForCausalLM

        fresh = AutoModelForCausalLM.from_pretrained(model_dir, dtype=self.model.dtype, use_safetensors=True)
        self.model.load_state_dict(fresh.state_dict())

    def sync(self, model, tokenizer) -> None:
        """In process: the engine samples from the trained model object itself; nothing to push."""
        if model is not self.model:
            self.set_model(model)

    def set_model(self, model) -> None:
        self.model = model
        self._decoder = None

    def close(self) -> None:
        self._decoder = None

    def _fast_decoder(self):
        if self._decoder is None:
            on_cuda = torch.device(self.device).type == "cuda"
            want = on_cuda if self.fast is None else self.fast
            if not (want and fastgen.supported(self.model)):
                return None
            self._decoder = fastgen.StaticDecoder(self.model)
        return self._decoder

    def _seed(self, seed: int) -> None:
        if torch.device(self.device).type == "cuda":
            torch.cuda.manual_seed(seed)
        else:
            torch.manual_seed(seed)

    def _fast_batches(self, prompts, n, plan, seed):
        """Run the static decoder over batches of prompts; yields (prompt indices, split rows)."""
        dec = self._fast_decoder()
        per_group = max(1, self.batch_size // max(1, n))
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        groups = [order[s : s + per_group] for s in range(0, len(order), per_group)]
        was_training = self.model.training
        self.model.eval()
        it = groups
        if self.progress and len(groups) > 1:
            from tqdm.auto import tqdm

            it = tqdm(groups, desc="generate", unit="batch", leave=False)
        try:
            for idx in it:
                self._seed(seed * 1_000_003 + min(idx))
                rec = dec.run([prompts[i] for i in idx], n, plan)
                yield idx, fastgen.split_rows(rec, set(plan.get("th_stop", ())), set(plan["su_stop"]))
        finally:
            if was_training:
                self.model.train()

    def _completion(self, ids, lps, finish) -> Completion:
        return Completion(
            token_ids=ids,
            logprobs=lps,
            finish_reason=finish,
            text=self.tokenizer.decode(ids, skip_special_tokens=False),
        )

    def two_stage(self, prompts, thought: SamplingParams, suffix: SamplingParams, close_ids: list[int]):
        """`base.two_stage` semantics in one decode loop per batch (fast path); else the two-call version."""
        if not prompts or len(close_ids) != 1 or self._fast_decoder() is None:
            return two_stage(self, prompts, thought, suffix, close_ids)
        plan = {
            "th_max": thought.max_new_tokens,
            "su_max": suffix.max_new_tokens,
            "close_id": close_ids[0],
            "th_stop": tuple(sorted(set(thought.stop_token_ids))),
            "su_stop": tuple(sorted(set(suffix.stop_token_ids))),
            "temps": (thought.temperature, suffix.temperature),
            "top_ps": (thought.top_p, suffix.top_p),
            "th_allow": thought.allowed_token_ids,
            "su_allow": suffix.allowed_token_ids,
            "th_ban": thought.suppress_token_ids,
            "su_ban": suffix.suppress_token_ids,
        }
        n = thought.n
        out: list[list[TwoStageCompletion]] = [[] for _ in prompts]
        for idx, rows in self._fast_batches(prompts, n, plan, thought.seed):
            for k, i in enumerate(idx):
                for tids, tlps, tfin, closed, sids, slps, sfin in rows[k * n : (k + 1) * n]:
                    t = Completion(
                        token_ids=tids[:-1] if closed else tids,
                        logprobs=tlps[:-1] if closed else tlps,
                        finish_reason=tfin,
                    )
                    out[i].append(
                        TwoStageCompletion(thought=t, suffix=self._completion(sids, slps, sfin), closed_by_model=closed)
                    )
        return out

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        if not prompts:
            return []
        if self._fast_decoder() is not None:
            plan = {
                "su_max": params.max_new_tokens,
                "su_stop": tuple(sorted(set(params.stop_token_ids))),
                "temps": (params.temperature,) * 2,
                "top_ps": (params.top_p,) * 2,
                "su_allow": params.allowed_token_ids,
                "su_ban": params.suppress_token_ids,
            }
            res: list[list[Completion]] = [[] for _ in prompts]
            n = params.n
            for idx, rows in self._fast_batches(prompts, n, plan, params.seed):
                for k, i in enumerate(idx):
                    res[i] = [self._completion(r[4], r[5], r[6]) for r in rows[k * n : (k + 1) * n]]
            return res
        per_group = max(1, self.batch_size // max(1, params.n))
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths pad less
        out: list[list[Completion]] = [[] for _ in prompts]
        groups = [order[s : s + per_group] for s in range(0, len(order), per_group)]
        it = groups
        if self.progress and len(groups) > 1:
            from tqdm.auto import tqdm

            it = tqdm(groups, desc="generate", unit="batch", leave=False)
        for g, idx in enumerate(it):
            # on the sampling tensors' device: torch.multinomial refuses a CPU generator for CUDA probs
            gen = torch.Generator(device=self.device).manual_seed(params.seed * 1_000_003 + min(idx))
            comps = self._generate_group([prompts[i] for i in idx], params, gen)
            for k, i in enumerate(idx):
                out[i] = comps[k]
        return out

    def _generate_group(self, prompts, params: SamplingParams, gen, embeds=None) -> list[list[Completion]]:
        """embeds: per prompt, input embeddings [len, d] to prefill instead of the prompt's tokens."""
        model, dev, n = self.model, self.device, params.n
        was_training = model.training
        model.eval()
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[r, width - len(p) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        # Only the last position's logits are needed; the full [B, L, vocab] tensor dominates prefill.
        feed = {"input_ids": ids} if embeds is None else {"inputs_embeds": _left_pad_embeds(embeds, width).to(dev)}
        res = model(**feed, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
        cache, logits = res.past_key_values, res.logits[:, -1]
        if n > 1:  # share the prefill across the n samples
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, 0)
            mask = mask.repeat_interleave(n, 0)
            pos = pos.repeat_interleave(n, 0)
        rows = len(prompts) * n
        live = torch.arange(rows, device=dev)  # original row of each live batch row
        next_pos = pos[:, -1] + 1
        toks: list[list[int]] = [[] for _ in range(rows)]
        lps: list[list[float]] = [[] for _ in range(rows)]
        finish = ["length"] * rows
        stop = torch.tensor(sorted(set(params.stop_token_ids)) or [-1], device=dev)
        banned = sorted(set(params.suppress_token_ids))
        bias = allow_bias(params.allowed_token_ids, logits.shape[-1], dev)
        for step in range(params.max_new_tokens):
            if banned:
                logits = logits.clone()
                logits[:, banned] = float("-inf")
            if bias is not None:
                logits = logits + bias
            tok, lp = sample_next(logits, params.temperature, params.top_p, gen)
            tok_l, lp_l, live_l = tok.tolist(), lp.tolist(), live.tolist()
            for b, r in enumerate(live_l):
                toks[r].append(tok_l[b])
                lps[r].append(lp_l[b])
            done = torch.isin(tok, stop)
            if done.any():
                for b in done.nonzero().flatten().tolist():
                    finish[live_l[b]] = "stop"
            if step == params.max_new_tokens - 1:
                break
            keep = (~done).nonzero().flatten()
            if keep.numel() == 0:
                break
            if keep.numel() < live.numel():  # finished rows leave the batch
                cache.batch_select_indices(keep)
                live, tok, mask, next_pos = live[keep], tok[keep], mask[keep], next_pos[keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            res = model(
                input_ids=tok[:, None],
                attention_mask=mask,
                position_ids=next_pos[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            cache, logits = res.past_key_values, res.logits[:, -1]
            next_pos = next_pos + 1
        if was_training:
            model.train()
        out = []
        for i in range(len(prompts)):
            out.append(
                [
                    Completion(
                        token_ids=toks[r],
                        logprobs=lps[r],
                        finish_reason=finish[r],
                        text=self.tokenizer.decode(toks[r], skip_special_tokens=False),
                    )
                    for r in range(i * n, (i + 1) * n)
                ]
            )
        return out


# ---- thought interfaces (issue 17): an allowed-token mask and latent steps before decoding -------


def allow_bias(allowed, vocab: int, device) -> torch.Tensor | None:
    """A [V] additive logit bias: 0 on the allowed ids, -inf elsewhere; None when all are allowed."""
    if not allowed:
        return None
    bias = torch.full((vocab,), float("-inf"), device=device)
    bias[torch.tensor(sorted(set(allowed)), device=device)] = 0.0
    return bias


def _left_pad_embeds(embeds, width: int) -> torch.Tensor:
    d = embeds[0].shape[-1]
    out = torch.zeros(len(embeds), width, d, dtype=embeds[0].dtype, device=embeds[0].device)
    for r, e in enumerate(embeds):
        out[r, width - e.shape[0] :] = e
    return out


@torch.no_grad()
def latent_prefixes(
    model, prompts: list[list[int]], latent_fn, steps: int, after_ids: list[int], batch_size: int = 32
) -> list[torch.Tensor]:
    """Input embeddings [len + steps + len(after), d] per prompt: the prompt's token embeddings, then
    `steps` latent vectors (each the last hidden state passed through `latent_fn`, fed back as the next
    input embedding), then the embeddings of `after_ids`. The latent steps run for a whole batch at
    once over a KV cache of the (left-padded) prompts."""
    dev = next(model.parameters()).device
    emb = model.get_input_embeddings()
    after = emb(torch.tensor(after_ids, dtype=torch.long, device=dev)) if after_ids else None
    out: list[torch.Tensor] = [None] * len(prompts)  # type: ignore[list-item]
    for s in range(0, len(prompts), batch_size):
        group = prompts[s : s + batch_size]
        width = max(len(p) for p in group)
        ids = torch.full((len(group), width), 0, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for r, p in enumerate(group):
            ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[r, width - len(p) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        res = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            output_hidden_states=True,
            logits_to_keep=1,
        )
        cache, h = res.past_key_values, res.hidden_states[-1][:, -1]
        nxt = pos[:, -1] + 1
        lat = []
        for _ in range(steps):
            e = latent_fn(h).to(emb.weight.dtype)
            lat.append(e)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            res = model(
                inputs_embeds=e[:, None],
                attention_mask=mask,
                position_ids=nxt[:, None],
                past_key_values=cache,
                use_cache=True,
                output_hidden_states=True,
                logits_to_keep=1,
            )
            cache, h = res.past_key_values, res.hidden_states[-1][:, -1]
            nxt = nxt + 1
        for r, p in enumerate(group):
            parts = [emb(torch.tensor(p, dtype=torch.long, device=dev))]
            parts += [e[r : r + 1] for e in lat]
            if after is not None:
                parts.append(after)
            out[s + r] = torch.cat(parts)
    return out


def generate_latent(
    engine: HFEngine, prompts: list[list[int]], latent_fn, steps: int, after_ids: list[int], params: SamplingParams
) -> list[list[Completion]]:
    """Continuous thought: `steps` latent steps for the whole batch, then `after_ids`, then decoding.

    On the fast path the static decoder prefills the prompt + latent embeddings once per prompt and
    its `n` samples share that prefix KV; otherwise the batched KV-cache loop does the same.
    """
    if not prompts:
        return []
    model = engine.model
    was = model.training
    model.eval()
    try:
        embeds = latent_prefixes(model, prompts, latent_fn, steps, after_ids, engine.batch_size)
        lens = [[0] * e.shape[0] for e in embeds]  # placeholder ids: only their lengths are read
        out: list[list[Completion]] = [[] for _ in prompts]
        per_group = max(1, engine.batch_size // max(1, params.n))
        order = sorted(range(len(prompts)), key=lambda i: -len(lens[i]))
        dec = engine._fast_decoder()
        for g in range(0, len(order), per_group):
            idx = order[g : g + per_group]
            if dec is not None:
                engine._seed(params.seed * 1_000_003 + min(idx))
                plan = {
                    "su_max": params.max_new_tokens,
                    "su_stop": tuple(sorted(set(params.stop_token_ids))),
                    "temps": (params.temperature,) * 2,
                    "top_ps": (params.top_p,) * 2,
                    "su_allow": params.allowed_token_ids,
                }
                rec = dec.run([lens[i] for i in idx], params.n, plan, embeds=[embeds[i] for i in idx])
                rows = fastgen.split_rows(rec, set(), set(plan["su_stop"]))
                for k, i in enumerate(idx):
                    out[i] = [engine._completion(r[4], r[5], r[6]) for r in rows[k * params.n : (k + 1) * params.n]]
            else:
                gen = torch.Generator(device=engine.device).manual_seed(params.seed * 1_000_003 + min(idx))
                comps = engine._generate_group([lens[i] for i in idx], params, gen, embeds=[embeds[i] for i in idx])
                for k, i in enumerate(idx):
                    out[i] = comps[k]
        return out
    finally:
        if was:
            model.train()
