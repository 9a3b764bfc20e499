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
 * Work is split over (b, branch, head). Each task copies its q, k, v into float32 buffers padded to multiples of
 * 16 (head width and keys; the padding is zero), so all of it stays in the core's cache and the arithmetic runs on
 * 16-float vectors (GCC / Clang vector extensions: AVX-512 registers where the CPU has them, two AVX registers or
 * plain code elsewhere). Scores are computed for 4 queries x 32 keys at a time, weighted sums of rows for 4 outputs
 * at a time, so that each vector loaded feeds several multiply-adds held in registers.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

#define NEG_BIG (-1e30f) /* a masked score; exp(NEG_BIG - max) is 0 without infinities */
#define VW 16

static inline float bf16_to_f32(uint16_t x) {
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f) { /* round to nearest even, NaN kept a NaN (branch-free) */
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)(nan ? (u >> 16) | 0x40u : r);
}

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

static inline v16 splat(float x) { return (v16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }

static inline v16 vmax(v16 a, v16 b) {
    v16i gt = a > b;
    return (v16)((gt & (v16i)a) | (~gt & (v16i)b));
}

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef int32_t v4i __attribute__((vector_size(16)));

/* horizontal max and sum as trees of halves (a loop over the 16 lanes is a chain of 15 dependent operations) */
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

static inline float hsum(v16 a) {
    v8 lo, hi;
    memcpy(&lo, &a, 32);
    memcpy(&hi, (char *)&a + 32, 32);
    v8 s8 = lo + hi;
    v4 l4, h4;
    memcpy(&l4, &s8, 16);
    memcpy(&h4, (char *)&s8 + 16, 16);
    v4 s4 = l4 + h4;
    return (s4[0] + s4[1]) + (s4[2] + s4[3]);
}

/* e^x for x <= 0 (larger x is taken as 0): x = n ln2 + r (|r| <= ln2 / 2), e^r by its degree-6 Taylor polynomial (relative error < 2e-7),
 * 2^n from the exponent bits; 0 below -87. */
static inline v16 vexp_neg(v16 x) {
    x = vmax(x, splat(-87.f));
    x = -vmax(-x, splat(0.f));
    v16i n = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, v16i); /* round half down (x <= 0) */
    v16 nf = __builtin_convertvector(n, v16);
    v16 r = (x - nf * 0.693359375f) + nf * 2.12194440e-4f; /* ln2 in two parts: n ln2 exact */
    v16 p = splat(1.f / 720.f);
    p = p * r + 1.f / 120.f;
    p = p * r + 1.f / 24.f;
    p = p * r + 1.f / 6.f;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    v16i e = (n + 127) << 23;
    return p * (v16)e;
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

/* rows 0..N-1 of part t (0 q, 1 k, 2 v) of one (b, br, h) into a (Np x hp) float32 buffer, zero padded */
static void gather(const dims *s, const void *qkv, int bf16, int b, int br, int h, int t, float scale, float *a) {
    memset(a, 0, sizeof(float) * (size_t)s->Np * s->hp);
    for (int n = 0; n < s->N; n++) load_row(qkv, bf16, qkv_at(s, b, n, br, t, h), s->hd, scale, a + (size_t)n * s->hp);
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

/* 1 / 0 per key of query i's mask, as floats (zero beyond N) */
static inline void mask_row(const dims *s, const uint8_t *keys, const uint8_t *adj, int kind, int b, int i,
                            float *restrict mf) {
    const uint8_t *restrict m = kind ? adj + ((size_t)b * s->N + i) * s->N : keys + (size_t)b * s->N;
    for (int j = 0; j < s->N; j++) mf[j] = (float)m[j];
    for (int j = s->N; j < s->Np; j++) mf[j] = 0.f;
}

static void *buffers(size_t floats) { /* 64-byte aligned, for the vector loads */
    return aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
}

/* Rows i < N of pm hold query i's scores; each becomes its probabilities p_ij (0 for blocked keys and for a
 * query without keys), and lse_row[i] its log-sum-exp (NEG_BIG without keys). With lse given (the backward), the
 * probabilities are exp(s - lse) without a new maximum. */
static void softmax_rows(const dims *s, float *pm, float *mf, float *lse_row, int given, const uint8_t *keys,
                         const uint8_t *adj, int kind, int b) {
    const int N = s->N, Np = s->Np, nv = Np / VW;
    const v16 *M = (const v16 *)mf;
    for (int i = 0; i < N; i++) {
        v16 *S = (v16 *)(pm + (size_t)i * Np);
        mask_row(s, keys, adj, kind, b, i, mf);
        float m;
        if (given) {
            m = lse_row[i];
        } else {
            v16 mx = splat(NEG_BIG);
            for (int jv = 0; jv < nv; jv++) mx = vmax(mx, S[jv] * M[jv] + (M[jv] - 1.f) * -NEG_BIG);
            m = hmax(mx);
        }
        if (m <= 0.5f * NEG_BIG) {
            for (int jv = 0; jv < nv; jv++) S[jv] = splat(0.f);
            lse_row[i] = NEG_BIG;
            continue;
        }
        v16 sum = splat(0.f);
        for (int jv = 0; jv < nv; jv++) {
            S[jv] = vexp_neg(S[jv] - m) * M[jv];
            sum += S[jv];
        }
        if (!given) {
            const float total = hsum(sum), inv = 1.f / total;
            for (int jv = 0; jv < nv; jv++) S[jv] *= inv;
            lse_row[i] = m + logf(total);
        }
    }
}

static void forward_task(const dims *s, const void *qkv, int bf16, void *out, float *lse, const uint8_t *keys,
                         const uint8_t *adj, const int *kinds, float scale, int task, float *buf) {
    const int N = s->N, hp = s->hp, Np = s->Np, H = s->H, nb = s->nb, hv = hp / VW;
    const int h = task % H, br = (task / H) % nb, b = task / (H * nb);
    const size_t blk = (size_t)Np * hp;
    float *q = buf, *k = q + blk, *v = k + blk, *kt = v + blk, *pm = kt + blk, *mf = pm + (size_t)Np * Np,
          *acc = mf + Np;
    gather(s, qkv, bf16, b, br, h, 0, scale, q);
    gather(s, qkv, bf16, b, br, h, 1, 1.f, k);
    gather(s, qkv, bf16, b, br, h, 2, 1.f, v);
    transpose(s, k, kt);
    float *lse_row = lse + (((size_t)b * nb + br) * H + h) * N;
    for (int i = 0; i < N; i += 4) scores4(s, q + (size_t)i * hp, kt, pm + (size_t)i * Np);
    softmax_rows(s, pm, mf, lse_row, 0, keys, adj, kinds[br], b);
    for (int i = 0; i < N; i += 4) { /* o_i = sum_j p_ij v_j, four queries at a time */
        weighted_rows4(s, pm + (size_t)i * Np, Np, 1, v, N, (v16 *)acc);
        for (int r = 0; r < 4 && i + r < N; r++)
            store_row(out, bf16, out_at(s, b, i + r, br, h), s->hd, 1.f, acc + (size_t)r * hv * VW);
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
    gather(s, qkv, bf16, b, br, h, 0, scale, q);
    gather(s, qkv, bf16, b, br, h, 1, 1.f, k);
    gather(s, qkv, bf16, b, br, h, 2, 1.f, v);
    transpose(s, k, kt);
    transpose(s, v, vt);
    memset(go, 0, sizeof(float) * blk);
    for (int n = 0; n < N; n++) load_row(dout, dbf16, out_at(s, b, n, br, h), s->hd, 1.f, go + (size_t)n * hp);
    memcpy(lrow, lse + (((size_t)b * nb + br) * H + h) * N, sizeof(float) * N);
    /* p_ij from the saved log-sum-exp; dp_ij = dO_i . v_j; ds_ij = p_ij (dp_ij - sum_j p_ij dp_ij) */
    for (int i = 0; i < N; i += 4) {
        scores4(s, q + (size_t)i * hp, kt, pm + (size_t)i * Np);
        scores4(s, go + (size_t)i * hp, vt, dsm + (size_t)i * Np);
    }
    softmax_rows(s, pm, mf, lrow, 1, keys, adj, kinds[br], b);
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

static dims make_dims(int B, int N, int nb, int H, int hd) {
    dims s = {B, N, nb, H, hd, (hd + VW - 1) / VW * VW, (N + VW - 1) / VW * VW};
    return s;
}

int lfm_attention_forward(const void *qkv, int bf16, void *out, float *lse, const uint8_t *keys, const uint8_t *adj,
                          const int *kinds, int B, int N, int nb, int H, int hd, float scale, int threads) {
    const dims s = make_dims(B, N, nb, H, hd);
    const int tasks = B * nb * H;
    const size_t per = (size_t)4 * s.Np * s.hp + (size_t)s.Np * s.Np + s.Np + 4 * s.hp;
    int fail = 0;
#pragma omp parallel num_threads(threads > 0 ? threads : 1) if (threads > 1)
    {
        float *buf = buffers(per);
        if (!buf) {
#pragma omp atomic write
            fail = 1;
        } else {
#pragma omp for schedule(static)
            for (int t = 0; t < tasks; t++) forward_task(&s, qkv, bf16, out, lse, keys, adj, kinds, scale, t, buf);
        }
        free(buf);
    }
    return fail;
}

int lfm_attention_backward(const void *qkv, int bf16, const void *dout, int dbf16, const float *lse, void *dqkv,
                           const uint8_t *keys, const uint8_t *adj, const int *kinds, int B, int N, int nb, int H,
                           int hd, float scale, int threads) {
    const dims s = make_dims(B, N, nb, H, hd);
    const int tasks = B * nb * H;
    const size_t per = (size_t)6 * s.Np * s.hp + (size_t)2 * s.Np * s.Np + 2 * s.Np + 4 * s.hp;
    int fail = 0;
#pragma omp parallel num_threads(threads > 0 ? threads : 1) if (threads > 1)
    {
        float *buf = buffers(per);
        if (!buf) {
#pragma omp atomic write
            fail = 1;
        } else {
#pragma omp for schedule(static)
            for (int t = 0; t < tasks; t++)
                backward_task(&s, qkv, bf16, dout, dbf16, lse, dqkv, keys, adj, kinds, scale, t, buf);
        }
        free(buf);
    }
    return fail;
}
