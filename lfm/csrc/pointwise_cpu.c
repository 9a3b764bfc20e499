/* The pointwise work around the matmuls of lfm.model.HybridLayer on a CPU, fused, forward and backward, so that each
 * tensor is read and written once instead of once per PyTorch op (and no float32 copy of a bfloat16 tensor is made):
 *
 *   bias + GELU  h (M, C) = x W^T without its bias, float32 or bfloat16: y = h + b (rounded to h's dtype),
 *                a = GELU(y) (exact: y Phi(y), erf to 1.5e-7) and GELU'(y) in place of h, kept for the backward:
 *                dh = da GELU'(y) and db = the column sums of dh, in one pass (no erf in the backward)
 *   bias (+ residual)  the other linears: h += b in place, and r + h into the float32 residual stream r where one
 *                follows; backward: db = the column sums of the gradient, with its bf16 copy for the matmuls
 *   LayerNorm    y = (x - mean) rstd gamma + beta, x float32 (M, D), y float32 or bfloat16 (the dtype the next
 *                linear takes under autocast); backward dx (float32), dgamma, dbeta in one pass
 *
 * C and D are multiples of 16 (lfm.native checks; other widths keep PyTorch's ops). Column sums are taken over
 * fixed blocks of ROWS rows and the blocks' sums added in block order, so no result depends on the thread count.
 */
#include "vec.h"

#define ROWS 64

static inline v16 vabs(v16 x) { return (v16)((v16i)x & 0x7fffffff); }

/* 1 / x: with AVX-512 a 14-bit reciprocal and one Newton step (relative error < 1e-7, a third of a division's
 * time), elsewhere a division */
static inline v16 vrcp(v16 x) {
#ifdef __AVX512F__
    const v16 r = (v16)_mm512_rcp14_ps((__m512)x);
    return r * (2.f - x * r);
#else
    return 1.f / x;
#endif
}

/* erf(u) (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7) and, in *e, e^{-u^2} */
static inline v16 verf(v16 u, v16 *e) {
    const v16 a = vabs(u), t = vrcp(1.f + 0.3275911f * a);
    const v16 p = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f +
                                                                                       t * 1.061405429f))));
    *e = vexp_neg(-(a * a));
    const v16 r = 1.f - p * *e; /* erf(|u|) */
    return (v16)((v16i)r | ((v16i)u & (int32_t)0x80000000)); /* erf is odd */
}

#define SQRT1_2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

static int blocks(int M) { return (M + ROWS - 1) / ROWS; }

/* the column sums of nblk rows of part (C floats each) -> out, added in row order */
static void add_blocks(const float *part, int nblk, int C, float *out) {
    memset(out, 0, sizeof(float) * (size_t)C);
    for (int k = 0; k < nblk; k++)
        for (int c = 0; c < C; c++) out[c] += part[(size_t)k * C + c];
}

/* h (M, C) += b (rounded to h's dtype), then out = GELU(h) in h's dtype and h = GELU'(h) in place (gelu: all the
 * backward needs of it), or h += b in place and out = res + h in float32 (res given): a linear layer's bias with
 * what follows it, in one pass */
static void bias_pass(void *h, int bf16, const float *bias, int gelu, const float *res, void *out, int M, int C,
                      int threads) {
#pragma omp parallel for num_threads(threads > 0 ? threads : 1) if (threads > 1) schedule(static)
    for (int k = 0; k < blocks(M); k++) {
        const int end = (k + 1) * ROWS < M ? (k + 1) * ROWS : M;
        for (int i = k * ROWS; i < end; i++)
            for (int c = 0; c < C; c += VW) {
                const size_t at = (size_t)i * C + c;
                store16(h, bf16, at, load16(h, bf16, at) + load16(bias, 0, c));
                const v16 x = load16(h, bf16, at); /* rounded as the matmul that follows would see it */
                if (gelu) { /* GELU(x) = x Phi(x), GELU'(x) = Phi(x) + x phi(x) */
                    v16 e;
                    const v16 phi = 0.5f * (1.f + verf(x * SQRT1_2, &e));
                    store16(out, bf16, at, x * phi);
                    store16(h, bf16, at, phi + x * e * INV_SQRT_2PI);
                } else if (res) {
                    store16(out, 0, at, load16(res, 0, at) + x);
                }
            }
    }
}

int lfm_bias_gelu_forward(void *h, int bf16, const float *bias, void *out, int M, int C, int threads) {
    bias_pass(h, bf16, bias, 1, NULL, out, M, C, threads);
    return 0;
}

/* One pass over g (M, C) (float32 or bf16) that sums its columns into sums (float32) and writes into out (out's
 * dtype; NULL: nothing written) either g itself (d NULL) or g d with d = GELU'(h) of out's dtype (saved by the
 * forward), summing what it writes: the backward of a bias, or of bias + GELU. */
static int column_pass(const void *g, int gbf16, const void *d, void *out, int obf16, float *sums, int M, int C,
                       int threads) {
    const int nblk = blocks(M);
    float *part = malloc(sizeof(float) * (size_t)nblk * C);
    if (!part) return 1;
#pragma omp parallel for num_threads(threads > 0 ? threads : 1) if (threads > 1) schedule(static)
    for (int k = 0; k < nblk; k++) {
        float *acc = part + (size_t)k * C;
        memset(acc, 0, sizeof(float) * (size_t)C);
        const int end = (k + 1) * ROWS < M ? (k + 1) * ROWS : M;
        for (int i = k * ROWS; i < end; i++)
            for (int c = 0; c < C; c += VW) {
                const size_t at = (size_t)i * C + c;
                v16 x = load16(g, gbf16, at);
                if (d) x *= load16(d, obf16, at);
                if (out) store16(out, obf16, at, x);
                store16(acc, 0, c, load16(acc, 0, c) + x);
            }
    }
    add_blocks(part, nblk, C, sums);
    free(part);
    return 0;
}

/* dh = dout GELU'(h) and dbias = its column sums, from the GELU'(h) that lfm_bias_gelu_forward left in h */
int lfm_gelu_backward(const void *dgelu, int bf16, const void *dout, int dbf16, void *dh, float *dbias, int M, int C,
                      int threads) {
    return column_pass(dout, dbf16, dgelu, dh, bf16, dbias, M, C, threads);
}

/* 1 / sqrt(x), lane by lane */
static inline v16 vrsqrt(v16 x) {
#ifdef __AVX512F__
    return (v16)_mm512_div_ps(_mm512_set1_ps(1.f), _mm512_sqrt_ps((__m512)x));
#else
    v16 r;
    for (int l = 0; l < VW; l++) r[l] = 1.f / sqrtf(x[l]);
    return r;
#endif
}

/* The row sums of n = 1 or 16 rows: lane l of the result = sum of row l's vectors (acc[l]); sums16 for 16 rows
 * (no horizontal sum a row), hsum for one */
static inline v16 row_sums(const v16 *acc, int n) { return n == VW ? sums16(acc) : splat(hsum(acc[0])); }

/* LayerNorm forward of rows i0 .. i0 + n - 1 (n = 16 or 1): the means and 1 / std of all n rows come out of one
 * sums16 each, so a row of D = 64 costs no horizontal sum and no scalar square root */
static inline void ln_rows(const float *x, const float *gamma, const float *beta, float eps, void *y, int ybf16,
                           float *mean, float *rstd, int i0, int n, int D) {
    v16 s[VW];
    for (int l = 0; l < n; l++) {
        const float *row = x + (size_t)(i0 + l) * D;
        v16 a = load16(row, 0, 0);
        for (int c = VW; c < D; c += VW) a += load16(row, 0, c);
        s[l] = a;
    }
    const v16 mu = row_sums(s, n) * (1.f / D);
    for (int l = 0; l < n; l++) {
        const float *row = x + (size_t)(i0 + l) * D;
        const v16 m = splat(mu[l]);
        v16 q = splat(0.f);
        for (int c = 0; c < D; c += VW) {
            const v16 d = load16(row, 0, c) - m;
            q += d * d;
        }
        s[l] = q;
    }
    const v16 r = vrsqrt(row_sums(s, n) * (1.f / D) + eps);
    for (int l = 0; l < n; l++) {
        const size_t at = (size_t)(i0 + l) * D;
        const v16 m = splat(mu[l]), rl = splat(r[l]);
        for (int c = 0; c < D; c += VW)
            store16(y, ybf16, at + c, (load16(x, 0, at + c) - m) * rl * load16(gamma, 0, c) + load16(beta, 0, c));
        mean[i0 + l] = mu[l], rstd[i0 + l] = r[l];
    }
}

int lfm_layer_norm_forward(const float *x, const float *gamma, const float *beta, float eps, void *y, int ybf16,
                           float *mean, float *rstd, int M, int D, int threads) {
    const int groups = (M + VW - 1) / VW;
#pragma omp parallel for num_threads(threads > 0 ? threads : 1) if (threads > 1) schedule(static)
    for (int k = 0; k < groups; k++) {
        if ((k + 1) * VW <= M) ln_rows(x, gamma, beta, eps, y, ybf16, mean, rstd, k * VW, VW, D);
        else
            for (int i = k * VW; i < M; i++) ln_rows(x, gamma, beta, eps, y, ybf16, mean, rstd, i, 1, D);
    }
    return 0;
}

/* LayerNorm backward of rows i0 .. i0 + n - 1 (n = 16 or 1): dx, and dgamma / dbeta added into pg / pb in row order */
static inline void ln_back_rows(const float *x, const float *mean, const float *rstd, const float *gamma,
                                const void *dy, int dybf16, float *dx, float *pg, float *pb, int i0, int n, int D) {
    v16 s1[VW], s2[VW];
    for (int l = 0; l < n; l++) {
        const size_t at = (size_t)(i0 + l) * D;
        const v16 m = splat(mean[i0 + l]), r = splat(rstd[i0 + l]);
        v16 a1 = splat(0.f), a2 = a1;
        for (int c = 0; c < D; c += VW) {
            const v16 xh = (load16(x, 0, at + c) - m) * r, gy = load16(dy, dybf16, at + c);
            const v16 g = gy * load16(gamma, 0, c);
            a1 += g, a2 += g * xh;
            store16(pg, 0, c, load16(pg, 0, c) + gy * xh);
            store16(pb, 0, c, load16(pb, 0, c) + gy);
        }
        s1[l] = a1, s2[l] = a2;
    }
    const v16 m1 = row_sums(s1, n) * (1.f / D), m2 = row_sums(s2, n) * (1.f / D);
    for (int l = 0; l < n; l++) {
        const size_t at = (size_t)(i0 + l) * D;
        const v16 m = splat(mean[i0 + l]), r = splat(rstd[i0 + l]), a = splat(m1[l]), b = splat(m2[l]);
        for (int c = 0; c < D; c += VW) {
            const v16 xh = (load16(x, 0, at + c) - m) * r;
            const v16 g = load16(dy, dybf16, at + c) * load16(gamma, 0, c);
            store16(dx, 0, at + c, r * (g - a - xh * b));
        }
    }
}

int lfm_layer_norm_backward(const float *x, const float *mean, const float *rstd, const float *gamma, const void *dy,
                            int dybf16, float *dx, float *dgamma, float *dbeta, int M, int D, int threads) {
    const int nblk = blocks(M);
    float *part = malloc(sizeof(float) * (size_t)(nblk + 1) * 2 * D), *sum = part + (size_t)nblk * 2 * D;
    if (!part) return 1;
#pragma omp parallel for num_threads(threads > 0 ? threads : 1) if (threads > 1) schedule(static)
    for (int k = 0; k < nblk; k++) {
        float *pg = part + (size_t)k * 2 * D, *pb = pg + D;
        memset(pg, 0, sizeof(float) * 2 * (size_t)D);
        const int end = (k + 1) * ROWS < M ? (k + 1) * ROWS : M; /* ROWS is a multiple of 16 */
        int i = k * ROWS;
        for (; i + VW <= end; i += VW) ln_back_rows(x, mean, rstd, gamma, dy, dybf16, dx, pg, pb, i, VW, D);
        for (; i < end; i++) ln_back_rows(x, mean, rstd, gamma, dy, dybf16, dx, pg, pb, i, 1, D);
    }
    add_blocks(part, nblk, 2 * D, sum); /* (dgamma, dbeta) */
    memcpy(dgamma, sum, sizeof(float) * (size_t)D);
    memcpy(dbeta, sum + D, sizeof(float) * (size_t)D);
    free(part);
    return 0;
}

/* h (M, C) += b in place; with res (float32 (M, C)) given, also out = res + h (float32): a linear layer's bias and the
 * residual connection after it */
int lfm_bias_add(void *h, int bf16, const float *bias, const float *res, float *out, int M, int C, int threads) {
    bias_pass(h, bf16, bias, 0, res, out, M, C, threads);
    return 0;
}

/* the column sums of g (M, C) into sums (float32); with copy given, g is also written there in copy's dtype (the
 * gradient a bf16 linear takes from a float32 residual stream) */
int lfm_column_sums(const void *g, int gbf16, float *sums, void *copy, int cbf16, int M, int C, int threads) {
    return column_pass(g, gbf16, NULL, copy, cbf16, sums, M, C, threads);
}
