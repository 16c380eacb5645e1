"""Static-cache decoding for Llama/Qwen-style decoders: the fast path of the `hf` engine on CUDA.

One batch holds G groups of K rows (the K samples of one prompt). The prompt is prefilled once per
group into a prefix KV cache [G, kvh, P, hd] that its K rows share at every decode step (they never
copy it); each row's own tokens go to a generated-token cache [B, kvh, Tg, hd] at slot `step - 1`.
Attention is computed over the two parts and merged by their log-sum-exp, so a decode step reads the
prefix once per group instead of once per row. Every buffer has a fixed shape, so one decode step
(forward, sampling, bookkeeping) is captured in a CUDA graph and replayed without host syncs; the
host looks at the `done` flags only every `check_every` steps.

Rows can run the RLMT two-stage plan inside one call: a thought (stops at a stop token or at its
budget, then `</think>` is fed in) followed by a suffix, as `thinkmid.engines.base.two_stage` does
with two calls. Sampling (thinkmid.engines.sampling) is sync-free: top-p by bisection on the tempered
logits (several thresholds per pass), then a Gumbel-max draw; log-probs are of the raw model (temperature
1, no top-p). The attention backends and the checks that pick one live in thinkmid.engines.attn_backends.
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F

from thinkmid.engines.attn_backends import attn_eff, attn_math, eff_ok, triton_ok
from thinkmid.engines.decode_attn import decode_attention
from thinkmid.engines.sampling import NEG, nucleus_sample
from thinkmid.models.rope import apply_rotary

log = logging.getLogger(__name__)


def supported(model) -> bool:
    """A decoder with model.model.{embed_tokens,layers,norm,rotary_emb} and q/k/v/o projections."""
    inner = getattr(model, "model", None)
    if inner is None or not all(hasattr(inner, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
        return False
    cfg = model.config
    if getattr(cfg, "use_sliding_window", False) or getattr(cfg, "rope_scaling", None) not in (None, {}):
        rs = getattr(cfg, "rope_scaling", None) or {}
        if getattr(cfg, "use_sliding_window", False) or rs.get("rope_type", "default") != "default":
            return False
    a = inner.layers[0].self_attn
    return all(hasattr(a, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) and hasattr(model, "lm_head")


class StaticDecoder:
    """Decodes batches of G groups x K rows with shared prefix KV; CUDA graphs when on CUDA."""

    def __init__(
        self,
        model,
        check_every: int = 16,
        use_graphs: bool | None = None,
        compile_sampler: bool | None = None,
        window: int = 128,
    ):
        """window: granularity of the generated-token attention windows (one CUDA graph per window)."""
        self.model = model
        self.window = window
        self.inner = model.model
        self.layers = list(self.inner.layers)
        cfg = model.config
        a = self.layers[0].self_attn
        self.hd = getattr(a, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.h, self.kvh = cfg.num_attention_heads, cfg.num_key_value_heads
        self.scale = getattr(a, "scaling", self.hd**-0.5)
        self.dev = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.check_every = check_every
        cuda = self.dev.type == "cuda"
        self.use_graphs = cuda if use_graphs is None else use_graphs
        self.attn = attn_math
        # THINKMID_DECODE_ATTN=triton|eff|math picks the kernel (for A/B runs); default: the best that works.
        want = os.environ.get("THINKMID_DECODE_ATTN", "triton" if cuda else "math")
        self.triton = want == "triton" and triton_ok(self.dev, self.dtype, self.hd, self.scale)
        if not self.triton and want != "math" and cuda and eff_ok(self.dev, self.dtype, self.hd, self.scale):
            self.attn = attn_eff
        self.sample = nucleus_sample
        if cuda if compile_sampler is None else compile_sampler:
            try:
                self.sample = torch.compile(nucleus_sample, dynamic=False, fullgraph=True)
            except Exception as e:  # pragma: no cover - depends on the toolchain
                log.warning("torch.compile of the sampler failed (%s); eager sampling", e)
        self._shape, self.graphs = None, {}
        # Decode-step pieces around attention, fused by torch.compile on CUDA (thousands of tiny
        # kernels a step otherwise); the cache writes and attention stay outside compiled code.
        self._pre, self._post = self._qkv, self._merge_finish
        if cuda if compile_sampler is None else compile_sampler:
            cfg = torch._dynamo.config  # one graph per piece, but guards may see each layer once
            for name in ("recompile_limit", "cache_size_limit"):
                if hasattr(cfg, name):
                    setattr(cfg, name, max(getattr(cfg, name), 4 * len(self.layers)))
            self._pre = torch.compile(self._qkv, dynamic=False)
            self._post = torch.compile(self._merge_finish, dynamic=False)

    # ---------------------------------------------------------------- model pieces
    def _qkv(self, layer, x, cos, sin):
        a = layer.self_attn
        b, s, _ = x.shape
        hn = layer.input_layernorm(x)
        q = a.q_proj(hn).view(b, s, -1, self.hd)
        k = a.k_proj(hn).view(b, s, -1, self.hd)
        if hasattr(a, "q_norm"):
            q, k = a.q_norm(q), a.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = a.v_proj(hn).view(b, s, -1, self.hd).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k, v

    def _finish_layer(self, layer, x, o):
        x = x + layer.self_attn.o_proj(o)
        return x + layer.mlp(layer.post_attention_layernorm(x))

    def _logits(self, x):
        return self.model.lm_head(self.inner.norm(x))[:, -1]

    @torch.no_grad()
    def _prefill(self, ids, valid, g0, x=None):
        """Prompts [g, P] (left-padded) -> prefix cache rows g0.., last-position logits [g, V].
        x: input embeddings [g, P, d] to use instead of the ids' (continuous thought)."""
        g, p = ids.shape
        pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
        x = self.inner.embed_tokens(ids) if x is None else x
        cos, sin = self.inner.rotary_emb(x, pos)
        causal = torch.ones(p, p, dtype=torch.bool, device=ids.device).tril()
        mask = (causal[None] & valid[:, None, :]) | torch.eye(p, dtype=torch.bool, device=ids.device)[None]
        rep = self.h // self.kvh
        for li, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, x, cos, sin)
            self.kp[li, g0 : g0 + g].copy_(k)
            self.vp[li, g0 : g0 + g].copy_(v)
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], scale=self.scale)
            x = self._finish_layer(layer, x, o.transpose(1, 2).reshape(g, p, -1))
        return self._logits(x[:, -1:])

    def _decode_forward(self):
        G, K, B = self.G, self.K, self.G * self.K
        kvh, gq, hd = self.kvh, self.h // self.kvh, self.hd
        slot = self.step - 1
        pos = (self.plen + slot)[:, None]
        x = self.inner.embed_tokens(self.tok[:, None])
        cos, sin = self.inner.rotary_emb(x, pos)
        w = self.win  # attend over the first `w` generated slots only (one graph per window)
        gbias = None if self.triton else torch.where(self.arange_g[:w] < self.step, 0.0, NEG)[None, None, None, :]
        for li, layer in enumerate(self.layers):
            q, k, v = self._pre(layer, x, cos, sin)  # q [B, H, 1, hd]
            self.kg[li].index_copy_(2, slot, k)
            self.vg[li].index_copy_(2, slot, v)
            qp = q.view(G, K, kvh, gq, hd).permute(0, 2, 1, 3, 4).reshape(G, kvh, K * gq, hd)
            if self.triton:  # exact filled length, read on the GPU: one graph for every step
                o1, l1 = decode_attention(qp, self.kp[li], self.vp[li], self.scale, bias=self.pbias.view(G, -1))
                o2, l2 = decode_attention(
                    q.reshape(B, kvh, gq, hd), self.kg[li], self.vg[li], self.scale, length=self.step
                )
            else:
                o1, l1 = self.attn(qp, self.kp[li], self.vp[li], self.pbias, self.scale)
                kg, vg = self.kg[li, :, :, :w], self.vg[li, :, :, :w]
                o2, l2 = self.attn(q.view(B, kvh, gq, hd), kg, vg, gbias, self.scale)
            x = self._post(layer, x, o1, l1, o2, l2)
        return self._logits(x)

    def _merge_finish(self, layer, x, o1, l1, o2, l2):
        """Merge the prefix and generated-token attention parts by log-sum-exp, then o_proj + MLP."""
        G, K, B = self.G, self.K, self.G * self.K
        kvh, gq, hd = self.kvh, self.h // self.kvh, self.hd
        o1 = o1.view(G, kvh, K, gq, hd).permute(0, 2, 1, 3, 4).reshape(B, kvh, gq, hd)
        l1 = l1.view(G, kvh, K, gq).permute(0, 2, 1, 3).reshape(B, kvh, gq)
        mx = torch.maximum(l1, l2)
        w1, w2 = (l1 - mx).exp()[..., None], (l2 - mx).exp()[..., None]
        o = ((o1 * w1 + o2 * w2) / (w1 + w2)).to(x.dtype)
        return self._finish_layer(layer, x, o.reshape(B, 1, -1))

    def _advance(self, logits):
        """Sample token `step` for every row, record it, update the two-stage state."""
        ph = self.phase
        logits = logits + self.allow_bias.index_select(0, ph)  # allowed-token masks per phase (0 = all)
        tok, lp = self.sample(logits, self.temps[ph], self.topps[ph])
        live = ~self.done
        in_th = live & (ph == 0)
        over = in_th & (self.cnt >= self.th_max)
        closes = in_th & ~over & (tok[:, None] == self.th_stop).any(-1)
        tok = torch.where(over, self.close_id, tok)
        code = torch.where(~live, 0, torch.where(over, 2, torch.where(in_th, 1, 3))).to(torch.int8)
        self.rec_tok.index_copy_(0, self.step, tok[None])
        self.rec_lp.index_copy_(0, self.step, lp[None])
        self.rec_code.index_copy_(0, self.step, code[None])
        switch = over | closes
        cnt = torch.where(switch, 0, self.cnt + live.long())
        in_su = live & (ph == 1)
        end = in_su & ((cnt >= self.su_max) | (tok[:, None] == self.su_stop).any(-1))
        end = end | (switch & (self.su_max <= 0))
        self.cnt.copy_(cnt)
        self.phase.copy_(torch.where(switch, 1, ph))
        self.done.copy_(self.done | end)
        # After a thought (closed by the model or out of budget) the next input is </think> itself.
        self.tok.copy_(torch.where(self.done, 0, torch.where(switch, self.close_id, tok)))
        self.step.add_(1)

    def _decode_step(self):
        self._advance(self._decode_forward())

    # ---------------------------------------------------------------- buffers and graphs
    def _setup(self, G, K, P, S):
        shape = (G, K, P, S)
        if self._shape == shape:
            return
        self._shape, self.graphs = None, {}
        for name in ("kp", "vp", "kg", "vg", "rec_tok", "rec_lp", "rec_code"):
            setattr(self, name, None)
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()
        dev, B, L = self.dev, G * K, len(self.layers)
        tg = max(16, -(-max(S - 1, 1) // 16) * 16)
        z = lambda *s, dt=self.dtype: torch.zeros(*s, dtype=dt, device=dev)  # noqa: E731
        self.G, self.K, self.P, self.S = G, K, P, S
        self.kp, self.vp = z(L, G, self.kvh, P, self.hd), z(L, G, self.kvh, P, self.hd)
        self.kg, self.vg = z(L, B, self.kvh, tg, self.hd), z(L, B, self.kvh, tg, self.hd)
        self.arange_g = torch.arange(tg, device=dev)
        self.pbias = z(G, 1, 1, P, dt=torch.float32)
        lng = lambda *s: z(*s, dt=torch.long)  # noqa: E731
        self.tok, self.plen, self.phase, self.cnt = lng(B), lng(B), lng(B), lng(B)
        self.step = torch.ones(1, dtype=torch.long, device=dev)
        self.done = torch.zeros(B, dtype=torch.bool, device=dev)
        self.temps, self.topps = z(2, dt=torch.float32), z(2, dt=torch.float32)
        self.th_max, self.su_max, self.close_id = lng(()), lng(()), lng(())
        self.th_stop, self.su_stop = lng(8) - 1, lng(8) - 1
        self.rec_tok, self.rec_lp = lng(S + 1, B), z(S + 1, B, dt=torch.float32)
        self.rec_code = z(S + 1, B, dt=torch.int8)
        self.allow_bias = z(2, self.model.lm_head.out_features, dt=torch.float32)
        # Windows over the generated-token cache: a step at slot s-1 uses the smallest window >= s.
        ws = tg if self.triton else self.window
        self.windows = sorted({min(tg, ws * i) for i in range(1, -(-tg // ws) + 1)})
        if self.use_graphs:
            pool = None
            for w in reversed(self.windows):  # largest first: its pool fits the others
                self.win = w
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for _ in range(2):
                        self.step.fill_(1)
                        try:
                            self._decode_step()
                        except Exception as e:  # pragma: no cover - toolchain dependent
                            if self._pre is self._qkv:
                                raise
                            log.warning("compiled decode step failed (%s); eager pieces", e)
                            self._pre, self._post = self._qkv, self._merge_finish
                            self._decode_step()
                torch.cuda.current_stream().wait_stream(s)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g, pool=pool):
                    self._decode_step()
                pool = g.pool()
                self.graphs[w] = g
        self._shape = shape

    def reset(self):
        self._shape, self.graphs = None, {}

    @torch.no_grad()
    def run(self, prompts: list[list[int]], K: int, plan: dict, embeds=None) -> dict:
        """Decode K rows per prompt. plan: th_max (None: single stage), su_max, th_stop, su_stop,
        close_id, temps (thought, suffix), top_ps, th_allow / su_allow (allowed ids per stage, empty:
        all), th_ban / su_ban (ids never sampled in that stage). embeds: per prompt, input embeddings [len, d] to prefill instead of its tokens.
        Returns host lists rec_tok/rec_lp/rec_code [S+1][B]."""
        two = plan.get("th_max") is not None
        S = (plan["th_max"] + 1 + plan["su_max"]) if two else plan["su_max"]
        G = len(prompts)
        P = -(-max(len(p) for p in prompts) // 64) * 64
        self._setup(G, K, P, S)
        dev = self.dev
        ids = torch.zeros(G, P, dtype=torch.long)
        valid = torch.zeros(G, P, dtype=torch.bool)
        for g, p in enumerate(prompts):
            ids[g, P - len(p) :] = torch.tensor(p, dtype=torch.long)
            valid[g, P - len(p) :] = True
        ids, valid = ids.to(dev), valid.to(dev)
        self.pbias.copy_(torch.where(valid, 0.0, NEG)[:, None, None, :])
        self.plen.copy_(torch.tensor([len(p) for p in prompts], device=dev).repeat_interleave(K))
        chunk = max(1, 16384 // P)
        x = None
        if embeds is not None:
            x = torch.zeros(G, P, embeds[0].shape[-1], dtype=self.dtype, device=dev)
            for g, e in enumerate(embeds):
                x[g, P - e.shape[0] :] = e.to(dev, self.dtype)
        logits = torch.cat(
            [
                self._prefill(ids[s : s + chunk], valid[s : s + chunk], s, None if x is None else x[s : s + chunk])
                for s in range(0, G, chunk)
            ]
        )
        self.allow_bias.zero_()
        for ph, key in ((0, "th_allow"), (1, "su_allow")):
            if plan.get(key):
                self.allow_bias[ph].fill_(NEG)
                self.allow_bias[ph, torch.tensor(sorted(set(plan[key])), device=dev)] = 0.0
        for ph, key in ((0, "th_ban"), (1, "su_ban")):  # suppressed ids (e.g. end-of-text in Phase 3)
            if plan.get(key):
                self.allow_bias[ph, torch.tensor(sorted(set(plan[key])), device=dev)] = NEG
        self.kg.zero_()
        self.vg.zero_()
        self.phase.fill_(0 if two else 1)
        self.cnt.zero_()
        self.done.zero_()
        self.step.zero_()
        self.rec_code.zero_()
        self.temps.copy_(torch.tensor(plan["temps"], dtype=torch.float32))
        self.topps.copy_(torch.tensor(plan["top_ps"], dtype=torch.float32))
        self.th_max.fill_(plan.get("th_max") or 0)
        self.su_max.fill_(plan["su_max"])
        self.close_id.fill_(plan.get("close_id") or 0)
        for buf, ids_ in ((self.th_stop, plan.get("th_stop", ())), (self.su_stop, plan.get("su_stop", ()))):
            if len(ids_) > buf.numel():
                raise ValueError(f"at most {buf.numel()} stop ids")
            buf.fill_(-1)
            buf[: len(ids_)] = torch.tensor(list(ids_), dtype=torch.long)
        self._advance(logits.repeat_interleave(K, 0))
        for s in range(1, S):
            if s % self.check_every == 0 and bool(self.done.all()):
                break
            self.win = next(w for w in self.windows if w >= s)
            if self.graphs:
                self.graphs[self.win].replay()
            else:
                self._decode_step()
        return {
            "tok": self.rec_tok[:S].T.tolist(),
            "lp": self.rec_lp[:S].T.tolist(),
            "code": self.rec_code[:S].T.tolist(),
        }


def split_rows(rec: dict, th_stop, su_stop):
    """Per row: (thought ids, thought lps, thought finish, closed_by_model, suffix ids, lps, finish)."""
    out = []
    for toks, lps, codes in zip(rec["tok"], rec["lp"], rec["code"]):
        tt = [(t, lp) for t, lp, c in zip(toks, lps, codes) if c == 1]
        st = [(t, lp) for t, lp, c in zip(toks, lps, codes) if c == 3]
        closed = bool(tt) and tt[-1][0] in th_stop
        sfin = "stop" if st and st[-1][0] in su_stop else "length"
        out.append(
            (
                [t for t, _ in tt],
                [lp for _, lp in tt],
                "stop" if closed else "length",
                closed,
                [t for t, _ in st],
                [lp for _, lp in st],
                sfin,
            )
        )
    return out
