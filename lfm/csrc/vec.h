/* Vector helpers shared by the CPU kernels of lfm (attention_cpu.c, pointwise_cpu.c): 16-float vectors as GCC /
 * Clang vector extensions (AVX-512 registers where the CPU has them, AVX or SSE registers elsewhere), bfloat16
 * conversions, a horizontal sum and e^x for x <= 0. */
#ifndef LFM_VEC_H
#define LFM_VEC_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

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

static inline v16 splat(float x) { return (v16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }

#ifdef __AVX512F__
#include <immintrin.h>
static inline v16 vmax(v16 a, v16 b) { return (v16)_mm512_max_ps((__m512)a, (__m512)b); }
#else
static inline v16 vmax(v16 a, v16 b) {
    v16i gt = a > b;
    return (v16)((gt & (v16i)a) | (~gt & (v16i)b));
}
#endif

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef int32_t v4i __attribute__((vector_size(16)));

/* horizontal sum as a tree of halves (a loop over the 16 lanes is a chain of 15 dependent operations) */
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

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF(a, b, ...) __builtin_shuffle(a, b, (v16i){__VA_ARGS__})
#endif

/* the sums of 16 vectors: lane l = the sum of x[l]'s lanes (15 pairwise steps of two shuffles and an add, where 16
 * horizontal sums take 60 of each) */
static inline v16 sums16(const v16 *x) {
    v16 y[8], z[4], w[2];
    for (int k = 0; k < 8; k++)
        y[k] = SHUF(x[2 * k], x[2 * k + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               SHUF(x[2 * k], x[2 * k + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    for (int k = 0; k < 4; k++)
        z[k] = SHUF(y[2 * k], y[2 * k + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
               SHUF(y[2 * k], y[2 * k + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    for (int k = 0; k < 2; k++)
        w[k] = SHUF(z[2 * k], z[2 * k + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
               SHUF(z[2 * k], z[2 * k + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    return SHUF(w[0], w[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
           SHUF(w[0], w[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

/* e^x for x <= 0 (larger x is taken as 0): x = n ln2 + r (|r| <= ln2 / 2), e^r by its degree-6 Taylor polynomial
 * (relative error < 2e-7), 2^n from the exponent bits; 0 below -87. */
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

typedef uint32_t v16u __attribute__((vector_size(64)));
typedef uint16_t v16h __attribute__((vector_size(32)));

/* 16 values of a float32 (bf16 = 0) or bfloat16 (bf16 = 1) array from element i */
static inline v16 load16(const void *p, int bf16, size_t i) {
    v16 x;
    if (bf16) {
#if defined(__AVX512F__) && defined(__AVX512BF16__)
        const __m256i w = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i));
        return (v16)_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(w), 16));
#else
        v16h h;
        memcpy(&h, (const uint16_t *)p + i, 32);
        v16u u = __builtin_convertvector(h, v16u) << 16;
        memcpy(&x, &u, 64);
#endif
    } else {
        memcpy(&x, (const float *)p + i, 64);
    }
    return x;
}

/* 16 values into a float32 or bfloat16 array at element i (bf16: round to nearest even, NaN kept a NaN) */
static inline void store16(void *p, int bf16, size_t i, v16 x) {
    if (bf16) {
#if defined(__AVX512F__) && defined(__AVX512BF16__)
        _mm256_storeu_si256((__m256i *)((uint16_t *)p + i), (__m256i)_mm512_cvtneps_pbh((__m512)x));
#else
        v16u u;
        memcpy(&u, &x, 64);
        const v16u nan = (v16u)((u & 0x7fffffffu) > 0x7f800000u);
        const v16u r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        const v16h h = __builtin_convertvector((nan & ((u >> 16) | 0x40u)) | (~nan & r), v16h);
        memcpy((uint16_t *)p + i, &h, 32);
#endif
    } else {
        memcpy((float *)p + i, &x, 64);
    }
}
#endif
