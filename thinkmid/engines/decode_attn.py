"""A Triton decode-attention kernel for the static decoder: few query rows against one KV head.

`StaticDecoder` splits attention into a shared-prefix part (the K*gq query rows of a group against
the group's prefix) and a generated part (a row's gq query heads against its own new tokens). Both
have a handful of query rows per KV head, which the general SDPA kernels tile for 64+ rows, and the
generated part's filled length lives on the GPU (the decode step), so a CUDA graph with SDPA must
read a fixed window, filled or not. This kernel reads exactly the filled length from device memory
and returns the output and log-sum-exp in fp32 for the two parts' merge.
"""

from __future__ import annotations

import torch

try:  # Triton ships with CUDA builds of torch; absent on CPU-only installs
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit
    def _kernel(
        Q,
        K,
        V,
        Bias,
        Len,
        O,
        L,
        sqn,
        sqh,
        sqm,
        skn,
        skh,
        skt,
        svn,
        svh,
        svt,
        sbn,
        son,
        soh,
        som,
        sln,
        slh,
        M,
        scale,
        T: tl.constexpr,
        HAS_BIAS: tl.constexpr,
        HAS_LEN: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        HD: tl.constexpr,
    ):
        n = tl.program_id(0)
        h = tl.program_id(1)
        om = tl.arange(0, BLOCK_M)
        od = tl.arange(0, HD)
        ot = tl.arange(0, BLOCK_N)
        q = tl.load(Q + n * sqn + h * sqh + om[:, None] * sqm + od[None, :], mask=om[:, None] < M, other=0.0)
        end = T
        if HAS_LEN:
            end = tl.minimum(tl.load(Len).to(tl.int32), T)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, HD], tl.float32)
        kb = K + n * skn + h * skh
        vb = V + n * svn + h * svh
        # A static trip count with a runtime skip: graph-safe, and Triton's CPU interpreter cannot
        # loop to a runtime bound.
        for start in range(0, T, BLOCK_N):
            if start < end:
                t = start + ot
                tm = t < end
                k = tl.load(kb + t[:, None] * skt + od[None, :], mask=tm[:, None], other=0.0)
                v = tl.load(vb + t[:, None] * svt + od[None, :], mask=tm[:, None], other=0.0)
                s = tl.dot(q, tl.trans(k)) * scale
                if HAS_BIAS:
                    s += tl.load(Bias + n * sbn + t, mask=tm, other=float("-inf"))[None, :]
                s = tl.where(tm[None, :], s, float("-inf"))
                m_new = tl.maximum(m_i, tl.max(s, 1))
                m_use = tl.where(m_new == float("-inf"), 0.0, m_new)  # a block masked so far: no NaN
                p = tl.exp(s - m_use[:, None])
                alpha = tl.exp(m_i - m_use)
                l_i = l_i * alpha + tl.sum(p, 1)
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
                m_i = m_new
        o = acc / l_i[:, None]
        tl.store(O + n * son + h * soh + om[:, None] * som + od[None, :], o, mask=om[:, None] < M)
        tl.store(L + n * sln + h * slh + om, m_i + tl.log(l_i), mask=om < M)


def decode_attention(q, k, v, scale: float, bias=None, length=None, block_n: int = 64):
    """(out fp32 [N, kvh, M, hd], lse fp32 [N, kvh, M]) of q [N, kvh, M, hd] against k/v [N, kvh, T, hd].

    bias: additive fp32 [N, T] (-inf masks a key); length: a 1-element device tensor, keys at
    index >= length are ignored (read from the GPU, so a captured graph follows it).
    """
    n, kvh, m, hd = q.shape
    t = k.shape[2]
    if q.stride(-1) != 1 or k.stride(-1) != 1 or v.stride(-1) != 1:
        raise ValueError("decode_attention needs the head dim contiguous")
    o = torch.empty(n, kvh, m, hd, dtype=torch.float32, device=q.device)
    lse = torch.empty(n, kvh, m, dtype=torch.float32, device=q.device)
    dummy = o  # an unused pointer argument still needs a tensor
    b = bias if bias is not None else dummy
    _kernel[(n, kvh)](
        q,
        k,
        v,
        b,
        length if length is not None else dummy,
        o,
        lse,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        v.stride(0),
        v.stride(1),
        v.stride(2),
        b.stride(0) if bias is not None else 0,
        o.stride(0),
        o.stride(1),
        o.stride(2),
        lse.stride(0),
        lse.stride(1),
        m,
        scale,
        T=t,
        HAS_BIAS=bias is not None,
        HAS_LEN=length is not None,
        BLOCK_M=max(16, triton.next_power_of_2(m)),
        BLOCK_N=block_n,
        HD=hd,
        num_warps=4,
        num_stages=2,
    )
    return o, lse
