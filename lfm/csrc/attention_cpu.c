/* Fused masked softmax attention for a CPU, forward and backward, read from and written to the layouts of
 * lfm.model.HybridLayer: no permute copies, no (B, heads, N, N) tensors in memory (the backward recomputes the
 * probabilities from the saved log-sum-exp), softmax in float32.
 *
 * Built on first use by lfm/native.py with the machine's C compiler (cc -O3 -march=native) and called through
 * ctypes with raw pointers; lfm.model falls back to its PyTorch matmul attention when no compiler is present.
 *
 * Layouts (all contiguous, row-major):
 *   qkv   (B, N, nb, 3, H, hd)  the qkv linear's output: branch, then q / k / v, then head   float32 or bfloat16
 *   out   (B, N, nb, H, hd)     = (B, N, nb * D): concat(branches), heads in order           same dtype as qkv
 *   lse   (B, nb, H, N)         log-sum-exp of each query's scaled, masked scores              float32
 *   keys  (B, N)                uint8, 1 = a key every query may attend (a branch of kind 0, global)
 *   adj   (B, N, N)             uint8, 1 = query i may attend key j (a branch of kind 1, local)
 *   kinds (nb,)                 0 = global (keys), 1 = local (adj)
 * A query with no key it may attend gets a zero output and passes no gradient.
 *
 * Local branches with few edges a query (a skeleton, kNN) go over their edges instead of all N x N pairs (the
 * section "local branches over their edges" below).
 *
 * Work is split over (b, branch, head). Each task copies its q, k, v into buffers padded to multiples of 16 (head
 * width and keys; the padding is zero), so all of it stays in the core's cache and the arithmetic runs on 16-float
 * vectors (GCC / Clang vector extensions: AVX-512 registers where the CPU has them, AVX or SSE registers elsewhere;
 * with AVX512-BF16, bf16 inputs take bf16 dot products, see below; with AVX-512, the softmax uses mask registers).
 * Scores are computed for 4 queries x 32 keys at a time, weighted sums of rows for 4 outputs at a time, so that
 * each vector loaded feeds several multiply-adds held in registers.
 */
#include "vec.h"

#define NEG_BIG (-1e30f) /* a masked score; exp(NEG_BIG - max) is 0 without infinities */

/* n contiguous values of a float32 or bfloat16 array, from element i, into dst (float32) */
static inline void load_row(const void *p, int bf16, size_t i, int n, float scale, float *restrict dst) {
    if (bf16) {
        const uint16_t *restrict s = (const uint16_t *)p + i;
        for (int d = 0; d < n; d++) dst[d] = scale * bf16_to_f32(s[d]);
    } else {
        const float *restrict s = (const float *)p + i;
        for (int d = 0; d < n; d++) dst[d] = scale * s[d];
    }
}

static inline void store_row(void *p, int bf16, size_t i, int n, float scale, const float *restrict src) {
    if (bf16) {
        uint16_t *restrict s = (uint16_t *)p + i;
        for (int d = 0; d < n; d++) s[d] = f32_to_bf16(scale * src[d]);
    } else {
        float *restrict s = (float *)p + i;
        for (int d = 0; d < n; d++) s[d] = scale * src[d];
    }
}

/* hd values from element i of a float32 or bfloat16 array, times scale, into a row of hp floats (zero beyond hd),
 * 16 at a time (one conversion instruction each) */
static inline void load16_row(const void *p, int bf16, size_t i, int hd, int hp, float scale, float *restrict dst) {
    const int full = hd / VW * VW;
    const v16 sc = splat(scale);
    for (int d = 0; d < full; d += VW) *(v16 *)(dst + d) = load16(p, bf16, i + d) * sc;
    if (full < hp) {
        *(v16 *)(dst + full) = splat(0.f);
        load_row(p, bf16, i + full, hd - full, scale, dst + full);
    }
}

/* hd values of a float32 row times scale to element i of a float32 or bfloat16 array, 16 at a time */
static inline void store16_row(void *p, int bf16, size_t i, int hd, float scale, const float *restrict src) {
    const int full = hd / VW * VW;
    for (int d = 0; d < full; d += VW) store16(p, bf16, i + d, *(const v16 *)(src + d) * scale);
    if (full < hd) store_row(p, bf16, i + full, hd - full, scale, src + full);
}

typedef struct {
    int B, N, nb, H, hd, hp, Np; /* hp: head width padded to 16; Np: keys padded to 16 */
} dims;

static inline size_t qkv_at(const dims *s, int b, int n, int br, int t, int h) {
    return ((((size_t)b * s->N + n) * s->nb + br) * 3 + t) * (size_t)s->H * s->hd + (size_t)h * s->hd;
}

static inline size_t out_at(const dims *s, int b, int n, int br, int h) {
    return (((size_t)b * s->N + n) * s->nb + br) * (size_t)s->H * s->hd + (size_t)h * s->hd;
}

/* rows 0..N-1 of part t (0 q, 1 k, 2 v) of one (b, br, h), times scale, into a (Np x hp) float32 buffer, zero
 * padded */
static void gather(const dims *s, const void *qkv, int bf16, int b, int br, int h, int t, float scale, float *a) {
    for (int n = 0; n < s->N; n++)
        load16_row(qkv, bf16, qkv_at(s, b, n, br, t, h), s->hd, s->hp, scale, a + (size_t)n * s->hp);
    memset(a + (size_t)s->N * s->hp, 0, sizeof(float) * (size_t)(s->Np - s->N) * s->hp);
}

/* q (times scale), k and v of one (b, br, h) */
static void gather_qkv(const dims *s, const void *qkv, int bf16, int b, int br, int h, float scale, float *q, float *k,
                       float *v) {
    gather(s, qkv, bf16, b, br, h, 0, scale, q);
    gather(s, qkv, bf16, b, br, h, 1, 1.f, k);
    gather(s, qkv, bf16, b, br, h, 2, 1.f, v);
}

/* the output gradient's rows of one (b, br, h) likewise (float32 buffer) */
static void gather_dout(const dims *s, const void *dout, int dbf16, int b, int br, int h, float *go) {
    for (int n = 0; n < s->N; n++)
        load16_row(dout, dbf16, out_at(s, b, n, br, h), s->hd, s->hp, 1.f, go + (size_t)n * s->hp);
    memset(go + (size_t)s->N * s->hp, 0, sizeof(float) * (size_t)(s->Np - s->N) * s->hp);
}

/* a (Np x hp) -> at (hd x Np) */
static void transpose(const dims *s, const float *restrict a, float *restrict at) {
    for (int d = 0; d < s->hd; d++)
        for (int n = 0; n < s->Np; n++) at[(size_t)d * s->Np + n] = a[(size_t)n * s->hp + d];
}

/* Scores of 4 query rows (hp apart in q) against all Np keys: sc[r * Np + j] = q_r . k_j. A tile of 4 rows x 2
 * vectors of 16 keys lives in registers: per head dimension 2 key loads and 4 broadcasts feed 8 multiply-adds. */
static inline void scores4(const dims *s, const float *restrict q, const float *restrict kt, float *restrict sc) {
    const int nv = s->Np / VW, hd = s->hd, hp = s->hp;
    const v16 *restrict K = (const v16 *)kt;
    for (int jv = 0; jv < nv; jv += 2) {
        const int two = jv + 1 < nv;
        v16 a0 = splat(0.f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int d = 0; d < hd; d++) {
            const v16 *row = K + (size_t)d * nv + jv;
            const v16 k0 = row[0], k1 = two ? row[1] : splat(0.f);
            const v16 q0 = splat(q[d]), q1 = splat(q[hp + d]), q2 = splat(q[2 * hp + d]), q3 = splat(q[3 * hp + d]);
            a0 += q0 * k0, a1 += q1 * k0, a2 += q2 * k0, a3 += q3 * k0;
            b0 += q0 * k1, b1 += q1 * k1, b2 += q2 * k1, b3 += q3 * k1;
        }
        v16 *o = (v16 *)sc + jv;
        o[0] = a0, o[nv] = a1, o[2 * nv] = a2, o[3 * nv] = a3;
        if (two) o[1] = b0, o[nv + 1] = b1, o[2 * nv + 1] = b2, o[3 * nv + 1] = b3;
    }
}

/* Four weighted sums of the first n rows of a (rows of hp floats): acc[r * hv + dv] = sum_j w[r * wr + j * ws]
 * row_j[dv]. Each row vector is loaded once for four multiply-adds into four register chains. */
static inline void weighted_rows4(const dims *s, const float *restrict w, size_t wr, size_t ws,
                                  const float *restrict a, int n, v16 *restrict acc) {
    const int hv = s->hp / VW;
    const float *w0 = w, *w1 = w + wr, *w2 = w + 2 * wr, *w3 = w + 3 * wr;
    for (int dv = 0; dv < hv; dv++) {
        const v16 *restrict col = (const v16 *)a + dv;
        v16 c0 = splat(0.f), c1 = c0, c2 = c0, c3 = c0;
        for (int j = 0; j < n; j++) {
            const v16 x = col[(size_t)j * hv];
            const size_t o = (size_t)j * ws;
            c0 += splat(w0[o]) * x, c1 += splat(w1[o]) * x, c2 += splat(w2[o]) * x, c3 += splat(w3[o]) * x;
        }
        acc[dv] = c0, acc[hv + dv] = c1, acc[2 * hv + dv] = c2, acc[3 * hv + dv] = c3;
    }
}

static void *buffers(size_t floats) { /* 64-byte aligned, for the vector loads */
    return aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
}

/* Rows i < N of pm hold query i's scores (multiplied by scale first). In a forward (tot given) each becomes
 * e_ij = exp(s_ij - m_i) (0 for blocked keys), with its maximum m_i in lse_row[i] and its sum in tot[i] (a query
 * without keys: a zero row, NEG_BIG and 0): finish_rows turns them into log-sum-exps and 1 / sums (one vector
 * logarithm and division for 16 rows, not a scalar chain per row) and the outputs are scaled by 1 / sum. In a
 * backward (tot NULL, lse_row the saved log-sum-exps) each becomes p_ij = exp(s_ij - lse_i). mf is a work row.
 * With AVX-512 the mask bytes become a 16-bit mask register per 16 keys (a masked load: no byte past the row is
 * read), used to select and to zero; elsewhere they become a row of 1 / 0 floats. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
/* keys jv * 16 .. + 15 of a mask row m of N bytes as a mask register (a masked load: no byte past the row) */
static inline __mmask16 key_mask(const uint8_t *m, int N, int jv) {
    const int rem = N - jv * VW;
    const __mmask16 tail = rem >= VW ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
    const __m128i mb = _mm_maskz_loadu_epi8(tail, m + (size_t)jv * VW);
    return _mm_test_epi8_mask(mb, mb);
}

static void softmax_rows(const dims *s, float *pm, float *mf, float *lse_row, float *tot, const uint8_t *keys,
                         const uint8_t *adj, int kind, int b, float scale) {
    const int N = s->N, Np = s->Np, nv = Np / VW;
    __mmask16 *ks = (__mmask16 *)mf;
    const __m512 neg = _mm512_set1_ps(NEG_BIG), vs = _mm512_set1_ps(scale);
    for (int i = 0; i < N; i++) {
        float *row = pm + (size_t)i * Np;
        const uint8_t *m = kind ? adj + ((size_t)b * N + i) * N : keys + (size_t)b * N;
        if (!tot) { /* a backward: p_ij = exp(scale s_ij - lse_i) where allowed, in one pass */
            const float l = lse_row[i];
            const v16 lv = splat(l);
            for (int jv = 0; jv < nv; jv++) {
                const __mmask16 k = l <= 0.5f * NEG_BIG ? (__mmask16)0 : key_mask(m, N, jv);
                const v16 x = (v16)_mm512_mul_ps(_mm512_loadu_ps(row + jv * VW), vs);
                _mm512_storeu_ps(row + jv * VW, _mm512_maskz_mov_ps(k, (__m512)vexp_neg(x - lv)));
            }
            continue;
        }
        __m512 mx = neg;
        for (int jv = 0; jv < nv; jv++) {
            const __mmask16 k = key_mask(m, N, jv);
            ks[jv] = k;
            const __m512 x = _mm512_mask_mov_ps(neg, k, _mm512_mul_ps(_mm512_loadu_ps(row + jv * VW), vs));
            _mm512_storeu_ps(row + jv * VW, x);
            mx = _mm512_max_ps(mx, x);
        }
        const float mval = _mm512_reduce_max_ps(mx);
        if (mval <= 0.5f * NEG_BIG) {
            for (int jv = 0; jv < nv; jv++) _mm512_storeu_ps(row + jv * VW, _mm512_setzero_ps());
            lse_row[i] = NEG_BIG;
            tot[i] = 0.f;
            continue;
        }
        const v16 mv = splat(mval);
        __m512 sum = _mm512_setzero_ps();
        for (int jv = 0; jv < nv; jv++) {
            const v16 x = (v16)_mm512_loadu_ps(row + jv * VW);
            const __m512 e = _mm512_maskz_mov_ps(ks[jv], (__m512)vexp_neg(x - mv));
            _mm512_storeu_ps(row + jv * VW, e);
            sum = _mm512_add_ps(sum, e);
        }
        tot[i] = _mm512_reduce_add_ps(sum), lse_row[i] = mval;
    }
}
#else
/* horizontal max as a tree of halves */
static inline float hmax(v16 a) {
    v8 lo, hi;
    memcpy(&lo, &a, 32);
    memcpy(&hi, (char *)&a + 32, 32);
    v8i g8 = lo > hi;
    v8 m8 = (v8)((g8 & (v8i)lo) | (~g8 & (v8i)hi));
    v4 l4, h4;
    memcpy(&l4, &m8, 16);
    memcpy(&h4, (char *)&m8 + 16, 16);
    v4i g4 = l4 > h4;
    v4 m4 = (v4)((g4 & (v4i)l4) | (~g4 & (v4i)h4));
    float x = m4[0] > m4[1] ? m4[0] : m4[1], y = m4[2] > m4[3] ? m4[2] : m4[3];
    return x > y ? x : y;
}

/* 1 / 0 per key of query i's mask, as floats (zero beyond N) */
static inline void mask_row(const dims *s, const uint8_t *keys, const uint8_t *adj, int kind, int b, int i,
                            float *restrict mf) {
    const uint8_t *restrict m = kind ? adj + ((size_t)b * s->N + i) * s->N : keys + (size_t)b * s->N;
    for (int j = 0; j < s->N; j++) mf[j] = (float)m[j];
    for (int j = s->N; j < s->Np; j++) mf[j] = 0.f;
}

static void softmax_rows(const dims *s, float *pm, float *mf, float *lse_row, float *tot, const uint8_t *keys,
                         const uint8_t *adj, int kind, int b, float scale) {
    const int N = s->N, Np = s->Np, nv = Np / VW;
    const v16 *M = (const v16 *)mf;
    for (int i = 0; i < N; i++) {
        v16 *S = (v16 *)(pm + (size_t)i * Np);
        if (scale != 1.f)
            for (int jv = 0; jv < nv; jv++) S[jv] *= scale;
        mask_row(s, keys, adj, kind, b, i, mf);
        float m;
        if (!tot) {
            m = lse_row[i];
        } else {
            v16 mx = splat(NEG_BIG);
            for (int jv = 0; jv < nv; jv++) mx = vmax(mx, S[jv] * M[jv] + (M[jv] - 1.f) * -NEG_BIG);
            m = hmax(mx);
        }
        if (m <= 0.5f * NEG_BIG) {
            for (int jv = 0; jv < nv; jv++) S[jv] = splat(0.f);
            lse_row[i] = NEG_BIG;
            if (tot) tot[i] = 0.f;
            continue;
        }
        v16 sum = splat(0.f);
        for (int jv = 0; jv < nv; jv++) {
            S[jv] = vexp_neg(S[jv] - m) * M[jv];
            sum += S[jv];
        }
        if (tot) tot[i] = hsum(sum), lse_row[i] = m;
    }
}

#endif

/* log(x) for 16 values x >= 1: x = 2^e m, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1)) by its
 * series to the 9th power (relative error < 1e-8 there) */
static inline v16 vlog_ge1(v16 x) {
    v16i u = (v16i)x, e = ((u >> 23) & 0xff) - 127;
    v16 m = (v16)((u & 0x7fffff) | 0x3f800000);
    const v16i big = m > 1.41421356f; /* -1 where m is above sqrt(2): halve it, one more power of 2 */
    m = (v16)((big & (v16i)(m * 0.5f)) | (~big & (v16i)m));
    e -= big;
    const v16 f = (m - 1.f) / (m + 1.f), f2 = f * f;
    const v16 series = 1.f + f2 * (1.f / 3.f + f2 * (1.f / 5.f + f2 * (1.f / 7.f + f2 * (1.f / 9.f))));
    return __builtin_convertvector(e, v16) * 0.693147180559945f + 2.f * f * series;
}

/* after a forward's softmax_rows: rows i < N get lse_row[i] = m_i + log(tot_i) and tot[i] = 1 / tot_i; a query without
 * keys (tot 0) keeps NEG_BIG and gets 0. mx and tot have Np entries (read 16 at a time; rows >= N unused). */
static void finish_rows(const dims *s, const float *mx, float *tot, float *lse_row) {
    for (int i = s->N; i < s->Np; i++) tot[i] = 0.f;
    for (int i = 0; i < s->Np; i += VW) {
        v16 t, m;
        memcpy(&t, tot + i, 64), memcpy(&m, mx + i, 64);
        const v16i has = t > 0.f;
        const v16 one = splat(1.f), safe = (v16)((has & (v16i)t) | (~has & (v16i)one));
        const v16 lse = (v16)((has & (v16i)(m + vlog_ge1(safe))) | (~has & (v16i)splat(NEG_BIG)));
        const v16 inv = (v16)(has & (v16i)(one / safe));
        memcpy(tot + i, &inv, 64);
        for (int r = 0; r < VW && i + r < s->N; r++) lse_row[i + r] = lse[r];
    }
}

static void forward_task(const dims *s, const void *qkv, int bf16, void *out, float *lse, const uint8_t *keys,
                         const uint8_t *adj, const int *kinds, float scale, int task, float *buf) {
    const int N = s->N, hp = s->hp, Np = s->Np, H = s->H, nb = s->nb, hv = hp / VW;
    const int h = task % H, br = (task / H) % nb, b = task / (H * nb);
    const size_t blk = (size_t)Np * hp;
    float *q = buf, *k = q + blk, *v = k + blk, *kt = v + blk, *pm = kt + blk, *mf = pm + (size_t)Np * Np,
          *acc = mf + Np, *mx = acc + 4 * hp, *tot = mx + Np;
    gather_qkv(s, qkv, bf16, b, br, h, scale, q, k, v);
    transpose(s, k, kt);
    float *lse_row = lse + (((size_t)b * nb + br) * H + h) * N;
    for (int i = 0; i < N; i += 4) scores4(s, q + (size_t)i * hp, kt, pm + (size_t)i * Np);
    softmax_rows(s, pm, mf, mx, tot, keys, adj, kinds[br], b, 1.f);
    finish_rows(s, mx, tot, lse_row);
    for (int i = 0; i < N; i += 4) { /* o_i = sum_j e_ij v_j / sum_j e_ij, four queries at a time */
        weighted_rows4(s, pm + (size_t)i * Np, Np, 1, v, N, (v16 *)acc);
        for (int r = 0; r < 4 && i + r < N; r++)
            store_row(out, bf16, out_at(s, b, i + r, br, h), s->hd, tot[i + r], acc + (size_t)r * hv * VW);
    }
}

static void backward_task(const dims *s, const void *qkv, int bf16, const void *dout, int dbf16, const float *lse,
                          void *dqkv, const uint8_t *keys, const uint8_t *adj, const int *kinds, float scale,
                          int task, float *buf) {
    const int N = s->N, hp = s->hp, Np = s->Np, H = s->H, nb = s->nb, nv = Np / VW;
    const int h = task % H, br = (task / H) % nb, b = task / (H * nb);
    const size_t blk = (size_t)Np * hp, sq = (size_t)Np * Np;
    float *q = buf, *k = q + blk, *v = k + blk, *go = v + blk, *kt = go + blk, *vt = kt + blk, *pm = vt + blk,
          *dsm = pm + sq, *mf = dsm + sq, *acc = mf + Np, *lrow = acc + 4 * hp;
    gather_qkv(s, qkv, bf16, b, br, h, scale, q, k, v);
    transpose(s, k, kt);
    transpose(s, v, vt);
    gather_dout(s, dout, dbf16, b, br, h, go);
    memcpy(lrow, lse + (((size_t)b * nb + br) * H + h) * N, sizeof(float) * N);
    /* p_ij from the saved log-sum-exp; dp_ij = dO_i . v_j; ds_ij = p_ij (dp_ij - sum_j p_ij dp_ij) */
    for (int i = 0; i < N; i += 4) {
        scores4(s, q + (size_t)i * hp, kt, pm + (size_t)i * Np);
        scores4(s, go + (size_t)i * hp, vt, dsm + (size_t)i * Np);
    }
    softmax_rows(s, pm, mf, lrow, NULL, keys, adj, kinds[br], b, 1.f);
    for (int i = 0; i < N; i++) {
        v16 *P = (v16 *)(pm + (size_t)i * Np), *DS = (v16 *)(dsm + (size_t)i * Np), dsum = splat(0.f);
        for (int jv = 0; jv < nv; jv++) dsum += P[jv] * DS[jv];
        const float Di = hsum(dsum);
        for (int jv = 0; jv < nv; jv++) DS[jv] = P[jv] * (DS[jv] - Di);
    }
    /* dq_i = scale sum_j ds_ij k_j (q was scaled); dk_j = sum_i ds_ij (scaled q_i); dv_j = sum_i p_ij dO_i */
    for (int i = 0; i < N; i += 4) {
        weighted_rows4(s, dsm + (size_t)i * Np, Np, 1, k, N, (v16 *)acc);
        for (int r = 0; r < 4 && i + r < N; r++)
            store_row(dqkv, bf16, qkv_at(s, b, i + r, br, 0, h), s->hd, scale, acc + (size_t)r * hp);
    }
    for (int j = 0; j < N; j += 4) {
        weighted_rows4(s, dsm + j, 1, Np, q, N, (v16 *)acc);
        for (int r = 0; r < 4 && j + r < N; r++)
            store_row(dqkv, bf16, qkv_at(s, b, j + r, br, 1, h), s->hd, 1.f, acc + (size_t)r * hp);
        weighted_rows4(s, pm + j, 1, Np, go, N, (v16 *)acc);
        for (int r = 0; r < 4 && j + r < N; r++)
            store_row(dqkv, bf16, qkv_at(s, b, j + r, br, 2, h), s->hd, 1.f, acc + (size_t)r * hp);
    }
}

/* ---- local branches over their edges ----
 * A local branch lets each query attend its graph neighbours: 2-5 keys a query on the training stream (the rig, its
 * motion tree, kNN), where the dense tasks above compute all N x Np scores (16 x the edges on the v2 stream). The
 * tasks below visit only the allowed pairs: the same softmax (in float32 from q, k, v as stored), outputs and
 * gradients, at a cost in the edges. Dot products run 16 edges at a time (sums16), the exponentials too (each edge's
 * query maximum or log-sum-exp fetched by by_edge), the maxima and sums per query are short scalar loops. A thread
 * builds a sample's edge lists once for its heads (cached_edges). `sparse` (the entry points' argument) picks:
 * 0 dense, 1 these, -1 these where a sample's edges are few (sparse_task). */

/* the edges of sample b's local mask (adj rows of N bytes): query src[e] attends key nbr[e]; query i's edges are
 * off[i] .. off[i + 1] - 1, in increasing key order. Padded with (0, 0) edges to a multiple of 16; returns the
 * number of edges. */
static int edges_of(const dims *s, const uint8_t *adj, int b, int *restrict off, int *restrict src,
                    int *restrict nbr) {
    const int N = s->N;
    int e = 0;
    for (int i = 0; i < N; i++) {
        off[i] = e;
        const uint8_t *m = adj + ((size_t)b * N + i) * N;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
        for (int jv = 0; jv * VW < N; jv++)
            for (unsigned k = key_mask(m, N, jv); k; k &= k - 1) src[e] = i, nbr[e++] = jv * VW + __builtin_ctz(k);
#else
        for (int j = 0; j < N; j++) src[e] = i, nbr[e] = j, e += m[j] != 0;
#endif
    }
    off[N] = e;
    for (int p = e; p % VW; p++) src[p] = nbr[p] = 0;
    return e;
}

/* out[e] = a[src[e]] . b[nbr[e]] for the E edges (rows of hp floats), 16 edges at a time (out padded to 16) */
static void edge_dots(const dims *s, const float *a, const float *b, const int *src, const int *nbr, int E,
                      float *out) {
    const int hp = s->hp, hv = hp / VW;
    for (int e0 = 0; e0 < E; e0 += VW) {
        v16 x[VW];
        for (int l = 0; l < VW; l++) {
            const v16 *A = (const v16 *)(a + (size_t)src[e0 + l] * hp), *B = (const v16 *)(b + (size_t)nbr[e0 + l] * hp);
            v16 p = A[0] * B[0];
            for (int dv = 1; dv < hv; dv++) p += A[dv] * B[dv];
            x[l] = p;
        }
        *(v16 *)(out + e0) = sums16(x);
    }
}

/* per_query[src[0..15]]: a value of each edge's query (a gather, not 16 scalar stores that a vector load would
 * wait on) */
static inline v16 by_edge(const float *per_query, const int *src) {
#if defined(__AVX512F__)
    return (v16)_mm512_i32gather_ps(_mm512_loadu_si512(src), per_query, 4);
#else
    v16 r;
    for (int l = 0; l < VW; l++) r[l] = per_query[src[l]];
    return r;
#endif
}

/* acc (hv vectors) = sum over the c edges of w[t] rows[J[t]] */
static inline void weighted_edges(int hv, int hp, const float *restrict w, const int *restrict J, int c,
                                  const float *restrict rows, v16 *restrict acc) {
    if (hv == 1) {
        v16 a = splat(0.f), a2 = a;
        int t = 0;
        for (; t + 1 < c; t += 2)
            a += splat(w[t]) * *(const v16 *)(rows + (size_t)J[t] * hp),
            a2 += splat(w[t + 1]) * *(const v16 *)(rows + (size_t)J[t + 1] * hp);
        if (t < c) a += splat(w[t]) * *(const v16 *)(rows + (size_t)J[t] * hp);
        acc[0] = a + a2;
        return;
    }
    for (int dv = 0; dv < hv; dv++) acc[dv] = splat(0.f);
    for (int t = 0; t < c; t++) {
        const v16 *R = (const v16 *)(rows + (size_t)J[t] * hp), x = splat(w[t]);
        for (int dv = 0; dv < hv; dv++) acc[dv] += x * R[dv];
    }
}

/* the work buffer of one local task over its edges (floats): 6 blocks of rows, 3 edge arrays, 2 of queries */
static size_t sparse_floats(const dims *s) {
    return (size_t)6 * s->Np * s->hp + (size_t)3 * ((size_t)s->Np * s->Np + VW) + 2 * (size_t)s->Np +
           4 * (size_t)s->hp;
}

/* A thread's edge lists of the sample it works on, kept past its work buffer for the sample's next heads (tasks of
 * one sample are consecutive): [sample, E, off (N + 1), src, nbr (N^2 + 16 each)] ints */
static size_t edge_cache_floats(const dims *s) { return 2 + (size_t)s->Np + 1 + 2 * ((size_t)s->Np * s->Np + VW); }

static int cached_edges(const dims *s, const uint8_t *adj, int b, int *cache, int **off, int **src, int **nbr) {
    *off = cache + 2, *src = *off + s->Np + 1, *nbr = *src + (size_t)s->Np * s->Np + VW;
    if (cache[0] != b) cache[1] = edges_of(s, adj, b, *off, *src, *nbr), cache[0] = b;
    return cache[1];
}

static void forward_sparse(const dims *s, const void *qkv, int bf16, void *out, float *lse, const uint8_t *adj,
                           float scale, int b, int br, int h, float *buf, int *cache) {
    const int N = s->N, hp = s->hp, Np = s->Np, H = s->H, nb = s->nb, hv = hp / VW;
    const size_t blk = (size_t)Np * hp, ecap = (size_t)Np * Np + VW;
    float *q = buf, *k = q + blk, *v = k + blk, *sc = v + blk, *mx = sc + ecap, *tot = mx + Np, *acc = tot + Np;
    int *off, *src, *nbr;
    const int E = cached_edges(s, adj, b, cache, &off, &src, &nbr);
    gather_qkv(s, qkv, bf16, b, br, h, scale, q, k, v);
    edge_dots(s, q, k, src, nbr, E, sc);
    /* e_ij = exp(s_ij - m_i) in place, 16 edges at a time; the maxima and sums per query are short scalar loops
     * (2-5 edges a query), the exponentials need no horizontal reduction */
    for (int i = 0; i < N; i++) {
        float m = NEG_BIG;
        for (int t = off[i]; t < off[i + 1]; t++) m = sc[t] > m ? sc[t] : m;
        mx[i] = m;
    }
    for (int e0 = 0; e0 < E; e0 += VW) *(v16 *)(sc + e0) = vexp_neg(*(v16 *)(sc + e0) - by_edge(mx, src + e0));
    for (int i = 0; i < N; i++) {
        float sum = 0.f;
        for (int t = off[i]; t < off[i + 1]; t++) sum += sc[t];
        tot[i] = sum;
    }
    finish_rows(s, mx, tot, lse + (((size_t)b * nb + br) * H + h) * N);
    for (int i = 0; i < N; i++) { /* o_i = sum_j e_ij v_j / sum_j e_ij */
        weighted_edges(hv, hp, sc + off[i], nbr + off[i], off[i + 1] - off[i], v, (v16 *)acc);
        store16_row(out, bf16, out_at(s, b, i, br, h), s->hd, tot[i], acc);
    }
}

/* p_ij = exp(s_ij - lse_i), dp_ij = dO_i . v_j, ds_ij = p_ij (dp_ij - sum_j p_ij dp_ij); dq_i = scale sum_j ds_ij
 * k_j, dk_j = sum_i ds_ij (scaled q_i), dv_j = sum_i p_ij dO_i */
static void backward_sparse(const dims *s, const void *qkv, int bf16, const void *dout, int dbf16,
                            const float *lse, void *dqkv, const uint8_t *adj, float scale, int b, int br, int h,
                            float *buf, int *cache) {
    const int N = s->N, hp = s->hp, Np = s->Np, H = s->H, nb = s->nb, hv = hp / VW;
    const size_t blk = (size_t)Np * hp, ecap = (size_t)Np * Np + VW;
    float *q = buf, *k = q + blk, *v = k + blk, *go = v + blk, *dk = go + blk, *dv = dk + blk, *p = dv + blk,
          *ds = p + ecap, *lq = ds + ecap, *acc = lq + Np;
    int *off, *src, *nbr;
    const int E = cached_edges(s, adj, b, cache, &off, &src, &nbr);
    gather_qkv(s, qkv, bf16, b, br, h, scale, q, k, v);
    gather_dout(s, dout, dbf16, b, br, h, go);
    memset(dk, 0, sizeof(float) * 2 * blk);
    edge_dots(s, q, k, src, nbr, E, p);
    edge_dots(s, go, v, src, nbr, E, ds);
    /* p = exp(s - lse) and ds = p (dp - D) 16 edges at a time (lq: each query's lse, then its D) */
    const float *lse_row = lse + (((size_t)b * nb + br) * H + h) * N;
    for (int i = 0; i < N; i++) lq[i] = lse_row[i] <= 0.5f * NEG_BIG ? -NEG_BIG : lse_row[i]; /* no keys: p = 0 */
    for (int e0 = 0; e0 < E; e0 += VW) *(v16 *)(p + e0) = vexp_neg(*(v16 *)(p + e0) - by_edge(lq, src + e0));
    for (int i = 0; i < N; i++) {
        float D = 0.f;
        for (int t = off[i]; t < off[i + 1]; t++) D += p[t] * ds[t];
        lq[i] = D;
    }
    for (int e0 = 0; e0 < E; e0 += VW) {
        v16 *S = (v16 *)(ds + e0);
        *S = *(v16 *)(p + e0) * (*S - by_edge(lq, src + e0));
    }
    for (int i = 0; i < N; i++) {
        const int c = off[i + 1] - off[i];
        const float *pr = p + off[i], *dr = ds + off[i];
        weighted_edges(hv, hp, dr, nbr + off[i], c, k, (v16 *)acc);
        store16_row(dqkv, bf16, qkv_at(s, b, i, br, 0, h), s->hd, scale, acc);
        const v16 *Q = (const v16 *)(q + (size_t)i * hp), *G = (const v16 *)(go + (size_t)i * hp);
        for (int t = 0; t < c; t++) {
            const size_t o = (size_t)nbr[off[i] + t] * hp;
            const v16 x = splat(dr[t]), y = splat(pr[t]);
            v16 *DK = (v16 *)(dk + o), *DV = (v16 *)(dv + o);
            for (int d = 0; d < hv; d++) DK[d] += x * Q[d], DV[d] += y * G[d];
        }
    }
    for (int n = 0; n < N; n++) {
        store16_row(dqkv, bf16, qkv_at(s, b, n, br, 1, h), s->hd, 1.f, dk + (size_t)n * hp);
        store16_row(dqkv, bf16, qkv_at(s, b, n, br, 2, h), s->hd, 1.f, dv + (size_t)n * hp);
    }
}

#if defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__AVX512BW__)
/* bfloat16 inputs on a CPU with AVX512-BF16: the four products (scores, probabilities x values and the three of the
 * backward) as bf16 dot products (vdpbf16ps: 32 products summed pairwise into 16 float32 lanes, twice the rate of
 * float32 multiply-adds), everything else as above in float32. q, k, v and the output gradient arrive in bf16, so
 * only the probabilities and the score gradients are rounded to bf16 (as PyTorch's bf16 attention rounds them). */
#include <immintrin.h>
#define HAVE_BF16_DOT 1

typedef uint16_t bf16_t;

/* rows idx[0..n-1] (idx NULL: rows 0..n-1) of part t of one (b, br, h) into rows 0..n-1 of a (Np x hp, bf16),
 * zero padded */
static void gather_rows_bh(const dims *s, const bf16_t *qkv, int b, int br, int h, int t, const int *idx, int n,
                           bf16_t *a) {
    const int hp = s->hp, hd = s->hd;
    for (int r = 0; r < n; r++) {
        const bf16_t *restrict src = qkv + qkv_at(s, b, idx ? idx[r] : r, br, t, h);
        bf16_t *restrict dst = a + (size_t)r * hp;
        if (hd == VW) {
            _mm256_storeu_si256((__m256i *)dst, _mm256_loadu_si256((const __m256i *)src));
        } else {
            for (int d = 0; d < hd; d++) dst[d] = src[d];
            for (int d = hd; d < hp; d++) dst[d] = 0;
        }
    }
    memset(a + (size_t)n * hp, 0, sizeof(bf16_t) * (size_t)(s->Np - n) * hp); /* padding rows */
}

/* rows of part t of one (b, br, h), bf16, row-major (Np x hp), zero padded */
static void gather_bh(const dims *s, const bf16_t *qkv, int b, int br, int h, int t, bf16_t *a) {
    gather_rows_bh(s, qkv, b, br, h, t, NULL, s->N, a);
}

/* the output gradient's rows of one (b, br, h) (float32 or bf16), bf16, row-major (Np x hp), zero padded */
static void gather_dout_bh(const dims *s, const void *dout, int dbf16, int b, int br, int h, bf16_t *go) {
    memset(go, 0, sizeof(bf16_t) * (size_t)s->Np * s->hp);
    for (int n = 0; n < s->N; n++) {
        const size_t io = out_at(s, b, n, br, h);
        bf16_t *row = go + (size_t)n * s->hp;
        if (dbf16) memcpy(row, (const bf16_t *)dout + io, sizeof(bf16_t) * s->hd);
        else for (int d = 0; d < s->hd; d++) row[d] = f32_to_bf16(((const float *)dout)[io + d]);
    }
}

/* n <= 16 float32 values times scale -> bf16 at out + i (one conversion instruction when n = 16) */
static inline void store_row_bh(bf16_t *out, size_t i, int n, float scale, const float *src) {
    if (n == VW) {
        const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(src), _mm512_set1_ps(scale));
        _mm256_storeu_si256((__m256i *)(out + i), (__m256i)_mm512_cvtneps_pbh(x));
    } else {
        store_row(out, 1, i, n, scale, src);
    }
}

/* 32 bf16: lanes 2l, 2l + 1 = (lo[l], hi[l]) for 16-value halves lo (lanes 0-15 of x) and hi (lanes 16-31) */
static inline __m512i interleave_halves(__m512i x) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, x);
}

/* row-major a (Np x hp) -> pairs of rows, a2[((n / 2) hp + d) 2 + n % 2]: a reduction over rows in pairs */
static void row_pairs(const dims *s, const bf16_t *restrict a, bf16_t *restrict a2) {
    const int hp = s->hp;
    for (int n = 0; n < s->Np; n += 2)
        for (int d = 0; d < hp; d += VW) {
            const __m256i lo = _mm256_loadu_si256((const __m256i *)(a + (size_t)n * hp + d));
            const __m256i hi = _mm256_loadu_si256((const __m256i *)(a + (size_t)(n + 1) * hp + d));
            const __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            _mm512_storeu_si512(a2 + ((size_t)(n >> 1) * hp + d) * 2, interleave_halves(x));
        }
}

/* row-major a (Np x hp) -> pairs of columns, at2[((d / 2) Np + n) 2 + d % 2]: 16 rows per vector, over d in pairs.
 * A pair (d, d + 1) of a row is one 32-bit word: a transpose of (Np x hp / 2) words, 16 rows per gather. */
static void col_pairs(const dims *s, const bf16_t *restrict a, bf16_t *restrict at2) {
    const int w = s->hp / 2, Np = s->Np;
    const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(w));
    for (int n = 0; n < Np; n += VW)
        for (int p = 0; p < w; p++) {
            const __m512i x = _mm512_i32gather_epi32(_mm512_add_epi32(rows, _mm512_set1_epi32(n * w + p)), a, 4);
            _mm512_storeu_si512(at2 + ((size_t)p * Np + n) * 2, x);
        }
}

/* float32 (Np x Np, rows >= `rows` taken as 0) -> bf16 row-major (pairs: consecutive columns of a row) or, with
 * pairs_of_rows, out[((i / 2) Np + j) 2 + i % 2] (pairs: rows i, i + 1 of a column) */
static void to_bh(const dims *s, const float *restrict in, int rows, int pairs_of_rows, bf16_t *restrict out) {
    const int Np = s->Np;
    const __m512 zero = _mm512_setzero_ps();
    if (!pairs_of_rows) {
        for (int i = 0; i < Np; i++)
            for (int j = 0; j < Np; j += VW) {
                const __m512 x = i < rows ? _mm512_loadu_ps(in + (size_t)i * Np + j) : zero;
                _mm256_storeu_si256((__m256i *)(out + (size_t)i * Np + j), (__m256i)_mm512_cvtneps_pbh(x));
            }
        return;
    }
    for (int i = 0; i < Np; i += 2)
        for (int j = 0; j < Np; j += VW) {
            const __m512 a = i < rows ? _mm512_loadu_ps(in + (size_t)i * Np + j) : zero;
            const __m512 b = i + 1 < rows ? _mm512_loadu_ps(in + (size_t)(i + 1) * Np + j) : zero;
            const __m512i x = (__m512i)_mm512_cvtne2ps_pbh(b, a); /* lanes 0-15 a, 16-31 b */
            _mm512_storeu_si512(out + ((size_t)(i >> 1) * Np + j) * 2, interleave_halves(x));
        }
}

static inline __m512bh pair(const bf16_t *p) { /* (p[0], p[1]) in every 32-bit lane, broadcast from memory */
    float f;
    memcpy(&f, p, 4);
    return (__m512bh)_mm512_set1_ps(f);
}

/* sc[r Np + j] = q_r . k_j for 4 rows of q (bf16, row stride hp) against kt2 (col_pairs of k) */
static inline void scores4_bh(const dims *s, const bf16_t *q, const bf16_t *kt2, float *sc) {
    const int nv = s->Np / VW, np2 = (s->hd + 1) / 2, hp = s->hp, Np = s->Np;
    for (int jv = 0; jv < nv; jv += 2) {
        const int two = jv + 1 < nv;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int p = 0; p < np2; p++) {
            const bf16_t *row = kt2 + ((size_t)p * Np + (size_t)jv * VW) * 2;
            const __m512bh k0 = (__m512bh)_mm512_loadu_si512(row);
            const __m512bh k1 = two ? (__m512bh)_mm512_loadu_si512(row + 2 * VW) : (__m512bh)_mm512_setzero_si512();
            const __m512bh q0 = pair(q + 2 * p), q1 = pair(q + hp + 2 * p), q2 = pair(q + 2 * hp + 2 * p),
                           q3 = pair(q + 3 * hp + 2 * p);
            a0 = _mm512_dpbf16_ps(a0, q0, k0), a1 = _mm512_dpbf16_ps(a1, q1, k0);
            a2 = _mm512_dpbf16_ps(a2, q2, k0), a3 = _mm512_dpbf16_ps(a3, q3, k0);
            b0 = _mm512_dpbf16_ps(b0, q0, k1), b1 = _mm512_dpbf16_ps(b1, q1, k1);
            b2 = _mm512_dpbf16_ps(b2, q2, k1), b3 = _mm512_dpbf16_ps(b3, q3, k1);
        }
        float *o = sc + (size_t)jv * VW;
        _mm512_storeu_ps(o, a0), _mm512_storeu_ps(o + Np, a1), _mm512_storeu_ps(o + 2 * Np, a2);
        _mm512_storeu_ps(o + 3 * Np, a3);
        if (two) {
            _mm512_storeu_ps(o + VW, b0), _mm512_storeu_ps(o + Np + VW, b1), _mm512_storeu_ps(o + 2 * Np + VW, b2);
            _mm512_storeu_ps(o + 3 * Np + VW, b3);
        }
    }
}

/* acc[r hp + d] = sum_{j < n} w_r[j] x_j[d] for 4 weight vectors and x2 (row_pairs of x); the pair (w_r[2p],
 * w_r[2p + 1]) is the 2 bf16 at w + r wr + p ps. Even and odd pairs go to separate accumulators: 8 chains, enough
 * to hide the dot product's latency. */
static inline void weighted4_bh(const dims *s, const bf16_t *w, size_t wr, size_t ps, int n, const bf16_t *x2,
                                float *acc) {
    const int hv = s->hp / VW, hp = s->hp, n2 = (n + 1) / 2;
    for (int dv = 0; dv < hv; dv++) {
        __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, e0 = c0, e1 = c0, e2 = c0, e3 = c0;
        int jp = 0;
        for (; jp + 1 < n2; jp += 2) {
            const __m512bh x = (__m512bh)_mm512_loadu_si512(x2 + ((size_t)jp * hp + (size_t)dv * VW) * 2);
            const __m512bh y = (__m512bh)_mm512_loadu_si512(x2 + ((size_t)(jp + 1) * hp + (size_t)dv * VW) * 2);
            const bf16_t *wp = w + (size_t)jp * ps, *wq = wp + ps;
            c0 = _mm512_dpbf16_ps(c0, pair(wp), x), c1 = _mm512_dpbf16_ps(c1, pair(wp + wr), x);
            c2 = _mm512_dpbf16_ps(c2, pair(wp + 2 * wr), x), c3 = _mm512_dpbf16_ps(c3, pair(wp + 3 * wr), x);
            e0 = _mm512_dpbf16_ps(e0, pair(wq), y), e1 = _mm512_dpbf16_ps(e1, pair(wq + wr), y);
            e2 = _mm512_dpbf16_ps(e2, pair(wq + 2 * wr), y), e3 = _mm512_dpbf16_ps(e3, pair(wq + 3 * wr), y);
        }
        if (jp < n2) {
            const __m512bh x = (__m512bh)_mm512_loadu_si512(x2 + ((size_t)jp * hp + (size_t)dv * VW) * 2);
            const bf16_t *wp = w + (size_t)jp * ps;
            c0 = _mm512_dpbf16_ps(c0, pair(wp), x), c1 = _mm512_dpbf16_ps(c1, pair(wp + wr), x);
            c2 = _mm512_dpbf16_ps(c2, pair(wp + 2 * wr), x), c3 = _mm512_dpbf16_ps(c3, pair(wp + 3 * wr), x);
        }
        float *o = acc + (size_t)dv * VW;
        _mm512_storeu_ps(o, _mm512_add_ps(c0, e0)), _mm512_storeu_ps(o + hp, _mm512_add_ps(c1, e1));
        _mm512_storeu_ps(o + 2 * hp, _mm512_add_ps(c2, e2)), _mm512_storeu_ps(o + 3 * hp, _mm512_add_ps(c3, e3));
    }
}

static size_t forward_floats_bh(const dims *s) { /* float32 part first (64-byte aligned), then bf16 */
    return (size_t)s->Np * s->Np + 3 * (size_t)s->Np + 4 * (size_t)s->hp +
           ((size_t)5 * s->Np * s->hp + (size_t)s->Np * s->Np) / 2 + 16;
}

static void forward_task_bh(const dims *s, const bf16_t *qkv, bf16_t *out, float *lse, const uint8_t *keys,
                            const uint8_t *adj, const int *kinds, float scale, int task, float *buf) {
    const int N = s->N, hp = s->hp, Np = s->Np, H = s->H, nb = s->nb;
    const int h = task % H, br = (task / H) % nb, b = task / (H * nb);
    const size_t blk = (size_t)Np * hp;
    float *pm = buf, *mf = pm + (size_t)Np * Np, *mx = mf + Np, *tot = mx + Np, *acc = tot + Np;
    bf16_t *q = (bf16_t *)(acc + 4 * hp), *k = q + blk, *v = k + blk, *kt2 = v + blk, *v2 = kt2 + blk,
           *p2 = v2 + blk;
    gather_bh(s, qkv, b, br, h, 0, q);
    gather_bh(s, qkv, b, br, h, 1, k);
    gather_bh(s, qkv, b, br, h, 2, v);
    col_pairs(s, k, kt2);
    row_pairs(s, v, v2);
    float *lse_row = lse + (((size_t)b * nb + br) * H + h) * N;
    for (int i = 0; i < N; i += 4) scores4_bh(s, q + (size_t)i * hp, kt2, pm + (size_t)i * Np);
    softmax_rows(s, pm, mf, mx, tot, keys, adj, kinds[br], b, scale);
    finish_rows(s, mx, tot, lse_row);
    to_bh(s, pm, N, 0, p2);
    for (int i = 0; i < N; i += 4) {
        weighted4_bh(s, p2 + (size_t)i * Np, Np, 2, N, v2, acc);
        for (int r = 0; r < 4 && i + r < N; r++)
            store_row_bh(out, out_at(s, b, i + r, br, h), s->hd, tot[i + r], acc + (size_t)r * hp);
    }
}

static size_t backward_floats_bh(const dims *s) {
    return (size_t)2 * s->Np * s->Np + s->Np + 4 * (size_t)s->hp + s->Np +
           ((size_t)9 * s->Np * s->hp + (size_t)3 * s->Np * s->Np) / 2 + 16;
}

static void backward_task_bh(const dims *s, const bf16_t *qkv, const void *dout, int dbf16, const float *lse,
                             bf16_t *dqkv, const uint8_t *keys, const uint8_t *adj, const int *kinds, float scale,
                             int task, float *buf) {
    const int N = s->N, hp = s->hp, Np = s->Np, H = s->H, nb = s->nb, nv = Np / VW;
    const int h = task % H, br = (task / H) % nb, b = task / (H * nb);
    const size_t blk = (size_t)Np * hp, sq = (size_t)Np * Np;
    float *pm = buf, *dsm = pm + sq, *mf = dsm + sq, *acc = mf + Np, *lrow = acc + 4 * hp;
    bf16_t *q = (bf16_t *)(lrow + Np), *k = q + blk, *v = k + blk, *go = v + blk, *kt2 = go + blk, *vt2 = kt2 + blk,
           *k2 = vt2 + blk, *q2 = k2 + blk, *go2 = q2 + blk, *ds2 = go2 + blk, *dst = ds2 + sq, *pt = dst + sq;
    gather_bh(s, qkv, b, br, h, 0, q);
    gather_bh(s, qkv, b, br, h, 1, k);
    gather_bh(s, qkv, b, br, h, 2, v);
    gather_dout_bh(s, dout, dbf16, b, br, h, go);
    col_pairs(s, k, kt2);
    col_pairs(s, v, vt2);
    row_pairs(s, k, k2);
    row_pairs(s, q, q2);
    row_pairs(s, go, go2);
    memcpy(lrow, lse + (((size_t)b * nb + br) * H + h) * N, sizeof(float) * N);
    for (int i = 0; i < N; i += 4) {
        scores4_bh(s, q + (size_t)i * hp, kt2, pm + (size_t)i * Np);
        scores4_bh(s, go + (size_t)i * hp, vt2, dsm + (size_t)i * Np); /* dO_i . v_j */
    }
    softmax_rows(s, pm, mf, lrow, NULL, keys, adj, kinds[br], b, scale);
    for (int i = 0; i < N; i++) {
        v16 *P = (v16 *)(pm + (size_t)i * Np), *DS = (v16 *)(dsm + (size_t)i * Np), dsum = splat(0.f);
        for (int jv = 0; jv < nv; jv++) dsum += P[jv] * DS[jv];
        const float Di = hsum(dsum);
        for (int jv = 0; jv < nv; jv++) DS[jv] = P[jv] * (DS[jv] - Di);
    }
    to_bh(s, dsm, N, 0, ds2);
    to_bh(s, dsm, N, 1, dst);
    to_bh(s, pm, N, 1, pt);
    /* the scaled score is scale q.k: dq_i = scale sum_j ds_ij k_j, dk_j = scale sum_i ds_ij q_i,
     * dv_j = sum_i p_ij dO_i */
    for (int i = 0; i < N; i += 4) {
        weighted4_bh(s, ds2 + (size_t)i * Np, Np, 2, N, k2, acc);
        for (int r = 0; r < 4 && i + r < N; r++)
            store_row_bh(dqkv, qkv_at(s, b, i + r, br, 0, h), s->hd, scale, acc + (size_t)r * hp);
    }
    for (int j = 0; j < N; j += 4) {
        weighted4_bh(s, dst + (size_t)j * 2, 2, (size_t)2 * Np, N, q2, acc);
        for (int r = 0; r < 4 && j + r < N; r++)
            store_row_bh(dqkv, qkv_at(s, b, j + r, br, 1, h), s->hd, scale, acc + (size_t)r * hp);
        weighted4_bh(s, pt + (size_t)j * 2, 2, (size_t)2 * Np, N, go2, acc);
        for (int r = 0; r < 4 && j + r < N; r++)
            store_row_bh(dqkv, qkv_at(s, b, j + r, br, 2, h), s->hd, 1.f, acc + (size_t)r * hp);
    }
}

/* A global branch (every query attends the same keys: the sample's valid ones), bf16: the scores kept transposed,
 * keys x queries, so each softmax runs down a column with 16 queries in the lanes: the maxima, sums and log-sum-exps
 * of 16 queries at once, no horizontal reduction and no mask (the blocked keys are left out: the valid ones are
 * gathered, packed, first). Same products as the dense tasks above, with the roles of the operands swapped. */

/* the valid keys of sample b, in order, into idx; returns their count */
static int valid_keys(const dims *s, const uint8_t *keys, int b, int *idx) {
    const uint8_t *m = keys + (size_t)b * s->N;
    int n = 0;
    for (int j = 0; j < s->N; j++) idx[n] = j, n += m[j] != 0;
    return n;
}

static void forward_global_bh(const dims *s, const bf16_t *qkv, bf16_t *out, float *lse, const uint8_t *keys,
                              float scale, int b, int br, int h, float *buf) {
    const int N = s->N, hp = s->hp, Np = s->Np, H = s->H, nb = s->nb, nv = Np / VW;
    const size_t blk = (size_t)Np * hp;
    float *st = buf, *mx = st + (size_t)Np * Np, *tot = mx + Np, *acc = tot + Np;
    int *idx = (int *)(acc + 4 * hp);
    bf16_t *q = (bf16_t *)(idx + Np), *k = q + blk, *v = k + blk, *qt2 = v + blk, *v2 = qt2 + blk, *pt = v2 + blk;
    float *lse_row = lse + (((size_t)b * nb + br) * H + h) * N;
    const int nk = valid_keys(s, keys, b, idx);
    if (!nk) { /* no key: zero outputs */
        for (int n = 0; n < N; n++) memset(out + out_at(s, b, n, br, h), 0, sizeof(bf16_t) * (size_t)s->hd);
        for (int n = 0; n < N; n++) lse_row[n] = NEG_BIG;
        return;
    }
    gather_bh(s, qkv, b, br, h, 0, q);
    gather_rows_bh(s, qkv, b, br, h, 1, idx, nk, k);
    gather_rows_bh(s, qkv, b, br, h, 2, idx, nk, v);
    col_pairs(s, q, qt2);
    row_pairs(s, v, v2);
    for (int j = 0; j < nk; j += 4) scores4_bh(s, k + (size_t)j * hp, qt2, st + (size_t)j * Np); /* S^T */
    const v16 vs = splat(scale);
    for (int iv = 0; iv < nv; iv++) { /* e = exp(scale s - m) down each column, 16 queries at a time */
        float *col = st + (size_t)iv * VW;
        v16 m = splat(NEG_BIG), sum = splat(0.f);
        for (int j = 0; j < nk; j++) m = vmax(m, *(v16 *)(col + (size_t)j * Np) * vs);
        for (int j = 0; j < nk; j++) {
            v16 *x = (v16 *)(col + (size_t)j * Np);
            const v16 e = vexp_neg(*x * vs - m);
            *x = e;
            sum += e;
        }
        memcpy(mx + (size_t)iv * VW, &m, 64), memcpy(tot + (size_t)iv * VW, &sum, 64);
    }
    finish_rows(s, mx, tot, lse_row);
    to_bh(s, st, nk, 1, pt); /* pairs of keys for the weighted sums of v */
    for (int i = 0; i < N; i += 4) {
        weighted4_bh(s, pt + (size_t)i * 2, 2, (size_t)2 * Np, nk, v2, acc);
        for (int r = 0; r < 4 && i + r < N; r++)
            store_row_bh(out, out_at(s, b, i + r, br, h), s->hd, tot[i + r], acc + (size_t)r * hp);
    }
}

static void backward_global_bh(const dims *s, const bf16_t *qkv, const void *dout, int dbf16, const float *lse,
                               bf16_t *dqkv, const uint8_t *keys, float scale, int b, int br, int h, float *buf) {
    const int N = s->N, hp = s->hp, Np = s->Np, H = s->H, nb = s->nb, nv = Np / VW;
    const size_t blk = (size_t)Np * hp, sq = (size_t)Np * Np;
    float *st = buf, *dpt = st + sq, *lv = dpt + sq, *acc = lv + Np;
    int *idx = (int *)(acc + 4 * hp);
    bf16_t *q = (bf16_t *)(idx + Np), *k = q + blk, *v = k + blk, *go = v + blk, *qt2 = go + blk, *gt2 = qt2 + blk,
           *k2 = gt2 + blk, *q2 = k2 + blk, *go2 = q2 + blk, *dsp = go2 + blk, *dsr = dsp + sq, *pr = dsr + sq;
    const uint8_t *km = keys + (size_t)b * N;
    for (int j = 0; j < N; j++) /* a blocked key gets no gradient */
        if (!km[j]) {
            memset(dqkv + qkv_at(s, b, j, br, 1, h), 0, sizeof(bf16_t) * (size_t)s->hd);
            memset(dqkv + qkv_at(s, b, j, br, 2, h), 0, sizeof(bf16_t) * (size_t)s->hd);
        }
    const int nk = valid_keys(s, keys, b, idx);
    if (!nk) { /* no key: no gradient for the queries either */
        for (int n = 0; n < N; n++) memset(dqkv + qkv_at(s, b, n, br, 0, h), 0, sizeof(bf16_t) * (size_t)s->hd);
        return;
    }
    gather_bh(s, qkv, b, br, h, 0, q);
    gather_rows_bh(s, qkv, b, br, h, 1, idx, nk, k);
    gather_rows_bh(s, qkv, b, br, h, 2, idx, nk, v);
    gather_dout_bh(s, dout, dbf16, b, br, h, go);
    col_pairs(s, q, qt2);
    col_pairs(s, go, gt2);
    row_pairs(s, k, k2);
    row_pairs(s, q, q2);
    row_pairs(s, go, go2);
    const float *lse_row = lse + (((size_t)b * nb + br) * H + h) * N;
    for (int i = 0; i < Np; i++) lv[i] = i < N ? lse_row[i] : -NEG_BIG; /* padded queries: p = 0 */
    for (int j = 0; j < nk; j += 4) {
        scores4_bh(s, k + (size_t)j * hp, qt2, st + (size_t)j * Np);  /* S^T */
        scores4_bh(s, v + (size_t)j * hp, gt2, dpt + (size_t)j * Np); /* dP^T: v_j . dO_i */
    }
    const v16 vs = splat(scale);
    for (int iv = 0; iv < nv; iv++) { /* p = exp(scale s - lse), D = sum_j p dp, ds = p (dp - D), down columns */
        float *pc = st + (size_t)iv * VW, *dc = dpt + (size_t)iv * VW;
        v16 L, D = splat(0.f);
        memcpy(&L, lv + (size_t)iv * VW, 64);
        for (int j = 0; j < nk; j++) {
            v16 *P = (v16 *)(pc + (size_t)j * Np);
            const v16 p = vexp_neg(*P * vs - L);
            *P = p;
            D += p * *(v16 *)(dc + (size_t)j * Np);
        }
        for (int j = 0; j < nk; j++) {
            v16 *G = (v16 *)(dc + (size_t)j * Np);
            *G = *(v16 *)(pc + (size_t)j * Np) * (*G - D);
        }
    }
    to_bh(s, dpt, nk, 1, dsp); /* ds^T in pairs of keys (for dq) and by rows (for dk); p^T by rows (for dv) */
    to_bh(s, dpt, nk, 0, dsr);
    to_bh(s, st, nk, 0, pr);
    /* dq_i = scale sum_j ds_ij k_j, dk_j = scale sum_i ds_ij q_i, dv_j = sum_i p_ij dO_i */
    for (int i = 0; i < N; i += 4) {
        weighted4_bh(s, dsp + (size_t)i * 2, 2, (size_t)2 * Np, nk, k2, acc);
        for (int r = 0; r < 4 && i + r < N; r++)
            store_row_bh(dqkv, qkv_at(s, b, i + r, br, 0, h), s->hd, scale, acc + (size_t)r * hp);
    }
    for (int j = 0; j < nk; j += 4) {
        weighted4_bh(s, dsr + (size_t)j * Np, Np, 2, N, q2, acc);
        for (int r = 0; r < 4 && j + r < nk; r++)
            store_row_bh(dqkv, qkv_at(s, b, idx[j + r], br, 1, h), s->hd, scale, acc + (size_t)r * hp);
        weighted4_bh(s, pr + (size_t)j * Np, Np, 2, N, go2, acc);
        for (int r = 0; r < 4 && j + r < nk; r++)
            store_row_bh(dqkv, qkv_at(s, b, idx[j + r], br, 2, h), s->hd, 1.f, acc + (size_t)r * hp);
    }
}
#endif

int lfm_attention_bf16_dot(void) {
#ifdef HAVE_BF16_DOT
    return 1;
#else
    return 0;
#endif
}

static dims make_dims(int B, int N, int nb, int H, int hd) {
    dims s = {B, N, nb, H, hd, (hd + VW - 1) / VW * VW, (N + VW - 1) / VW * VW};
    return s;
}

/* what one call passes to every task */
typedef struct {
    const void *qkv, *dout;
    void *out, *dqkv;
    float *lse;
    const uint8_t *keys, *adj;
    const int *kinds;
    int bf16, dbf16;
    float scale;
    int sparse; /* local branches: 0 dense, 1 over the edges, -1 over the edges where few (sparse_task) */
    size_t cache_at; /* where each thread's edge cache starts in its work buffer (floats) */
} job;

/* Task t's sample, branch and head, and whether it is a local branch that goes over its edges: always (sparse 1),
 * never (0), or (-1) where they are at most SPARSE_PER_BLOCK per query and 16-key block: the two cost about the same
 * at 3-5 (measured at N = 12-89 on the v2 stream's graphs, bf16, docs/training.md) */
#define SPARSE_PER_BLOCK 4
static int sparse_task(const dims *s, const job *j, int t, int *b, int *br, int *h, float *buf) {
    *h = t % s->H, *br = (t / s->H) % s->nb, *b = t / (s->H * s->nb);
    if (j->kinds[*br] != 1 || j->sparse == 0) return 0;
    int *off, *src, *nbr;
    const int E = cached_edges(s, j->adj, *b, (int *)(buf + j->cache_at), &off, &src, &nbr);
    return j->sparse == 1 || E <= SPARSE_PER_BLOCK * s->N * (s->Np / VW);
}

static void forward_one(const dims *s, const job *j, int t, float *buf) {
    int b, br, h;
    if (sparse_task(s, j, t, &b, &br, &h, buf)) {
        forward_sparse(s, j->qkv, j->bf16, j->out, j->lse, j->adj, j->scale, b, br, h, buf,
                       (int *)(buf + j->cache_at));
        return;
    }
#ifdef HAVE_BF16_DOT
    if (j->bf16) {
        if (j->kinds[br] == 0) forward_global_bh(s, j->qkv, j->out, j->lse, j->keys, j->scale, b, br, h, buf);
        else forward_task_bh(s, j->qkv, j->out, j->lse, j->keys, j->adj, j->kinds, j->scale, t, buf);
        return;
    }
#endif
    forward_task(s, j->qkv, j->bf16, j->out, j->lse, j->keys, j->adj, j->kinds, j->scale, t, buf);
}

static void backward_one(const dims *s, const job *j, int t, float *buf) {
    int b, br, h;
    if (sparse_task(s, j, t, &b, &br, &h, buf)) {
        backward_sparse(s, j->qkv, j->bf16, j->dout, j->dbf16, j->lse, j->dqkv, j->adj, j->scale, b, br, h, buf,
                        (int *)(buf + j->cache_at));
        return;
    }
#ifdef HAVE_BF16_DOT
    if (j->bf16) {
        if (j->kinds[br] == 0)
            backward_global_bh(s, j->qkv, j->dout, j->dbf16, j->lse, j->dqkv, j->keys, j->scale, b, br, h, buf);
        else
            backward_task_bh(s, j->qkv, j->dout, j->dbf16, j->lse, j->dqkv, j->keys, j->adj, j->kinds, j->scale, t,
                             buf);
        return;
    }
#endif
    backward_task(s, j->qkv, j->bf16, j->dout, j->dbf16, j->lse, j->dqkv, j->keys, j->adj, j->kinds, j->scale, t,
                  buf);
}

/* every (b, branch, head) task, over `threads` OpenMP threads, each with its own work buffer of `per` floats;
 * returns 1 when a buffer could not be allocated */
static int run_tasks(const dims *s, size_t per, int threads, void (*one)(const dims *, const job *, int, float *),
                     const job *j) {
    const int tasks = s->B * s->nb * s->H;
    int fail = 0;
#pragma omp parallel num_threads(threads > 0 ? threads : 1) if (threads > 1)
    {
        float *buf = buffers(per + edge_cache_floats(s));
        if (buf) ((int *)(buf + per))[0] = -1; /* no sample's edges cached yet */
        if (!buf) {
#pragma omp atomic write
            fail = 1;
        } else {
#pragma omp for schedule(static)
            for (int t = 0; t < tasks; t++) one(s, j, t, buf);
        }
        free(buf);
    }
    return fail;
}

int lfm_attention_forward(const void *qkv, int bf16, void *out, float *lse, const uint8_t *keys, const uint8_t *adj,
                          const int *kinds, int B, int N, int nb, int H, int hd, float scale, int threads,
                          int sparse) {
    const dims s = make_dims(B, N, nb, H, hd);
    job j = {qkv, NULL, out, NULL, lse, keys, adj, kinds, bf16, 0, scale, sparse, 0};
    size_t per = (size_t)4 * s.Np * s.hp + (size_t)s.Np * s.Np + 3 * s.Np + 4 * s.hp;
#ifdef HAVE_BF16_DOT
    if (bf16) per = forward_floats_bh(&s);
#endif
    if (sparse && sparse_floats(&s) > per) per = sparse_floats(&s);
    j.cache_at = per;
    return run_tasks(&s, per, threads, forward_one, &j);
}

int lfm_attention_backward(const void *qkv, int bf16, const void *dout, int dbf16, const float *lse, void *dqkv,
                           const uint8_t *keys, const uint8_t *adj, const int *kinds, int B, int N, int nb, int H,
                           int hd, float scale, int threads, int sparse) {
    const dims s = make_dims(B, N, nb, H, hd);
    job j = {qkv, dout, NULL, dqkv, (float *)lse, keys, adj, kinds, bf16, dbf16, scale, sparse, 0};
    size_t per = (size_t)6 * s.Np * s.hp + (size_t)2 * s.Np * s.Np + 2 * s.Np + 4 * s.hp;
#ifdef HAVE_BF16_DOT
    if (bf16) per = backward_floats_bh(&s);
#endif
    if (sparse && sparse_floats(&s) > per) per = sparse_floats(&s);
    j.cache_at = per;
    return run_tasks(&s, per, threads, backward_one, &j);
}
