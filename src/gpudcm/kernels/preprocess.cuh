// Fused grey preprocessing: rescale, LINEAR window, normalise, separable resample and cast, one output
// sample per loop step. gpudcm/preprocessing.py (`_reference`) is the NumPy definition this reproduces bit
// for bit: every float operation below is one float32 operation there, in the same order.
#pragma once
#include "common.cuh"

enum {
    GD_PRE_WINDOW = 1u,  // apply the LINEAR window
    GD_PRE_MINMAX = 2u,  // normalise by the range of the transformed values, from the input's min and max
};

// The launch's plan: one array of 32-bit words, built by gpudcm/preprocessing.py (`PreprocessPlan.words`):
//   [0, 8)    n_frames, rows_in, cols_in, rows_out, cols_out, taps_y, taps_x, flags
//   [8, 22)   float32 bit patterns, in the order of the GD_PRE_P_* indices below
//   then      y source indices (rows_out * taps_y, int32; -1 ends a list early), x source indices
//             (cols_out * taps_x), y weights (float32), x weights (float32)
enum {
    GD_PRE_P_SLOPE, GD_PRE_P_INTERCEPT, GD_PRE_P_LOWER, GD_PRE_P_UPPER, GD_PRE_P_CENTER, GD_PRE_P_WIDTH,
    GD_PRE_P_Y_MIN, GD_PRE_P_Y_MAX, GD_PRE_P_Y_RANGE, GD_PRE_P_CLAMP_LO, GD_PRE_P_CLAMP_HI,
    GD_PRE_P_NORM_SUB, GD_PRE_P_NORM_DIV, GD_PRE_P_OUT_DIV, GD_PRE_NPARAMS
};
enum { GD_PRE_NDIMS = 8, GD_PRE_HEADER = GD_PRE_NDIMS + GD_PRE_NPARAMS };

struct GdPreParams {
    gd_u32 n_frames, rows_in, cols_in, rows_out, cols_out;
    gd_u32 taps_y, taps_x;  // taps per output row / column in the tables
    gd_u32 flags;
    const gd_u32* y_idx;  // int32 source indices, as words
    const gd_u32* x_idx;
    const gd_u32* y_w;    // float32 weights, as words
    const gd_u32* x_w;
    float slope, intercept;  // rescale: v = x * slope + intercept
    float lower, upper;      // window: v <= lower -> y_min, v > upper -> y_max, else linear
    float center, width, y_min, y_max, y_range, clamp_lo, clamp_hi;
    float norm_sub, norm_div;  // v = (v - sub) / div (set per launch under GD_PRE_MINMAX)
    float out_div;             // resampled sum / out_div
};

GD_HD gd_u32 gd_pre_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    gd_u32 u;
    __builtin_memcpy(&u, &f, sizeof u);
    return u;
#endif
}

GD_HD float gd_pre_float(gd_u32 u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    __builtin_memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// float32 -> IEEE half bits, round to nearest even (NumPy's astype(float16)); NaN stays a quiet NaN.
GD_HD gd_u16 gd_pre_f16_bits(float f) {
    const gd_u32 x = gd_pre_bits(f);
    const gd_u32 sign = (x >> 16) & 0x8000u;
    const gd_u32 ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {  // inf, NaN
        return (gd_u16)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
    }
    if (ax >= 0x477ff000u) return (gd_u16)(sign | 0x7c00u);  // >= 65520 rounds to infinity
    if (ax < 0x38800000u) {  // below 2**-14: a half subnormal (or zero) in units of 2**-24
        const gd_u32 e = ax >> 23;
        if (e < 102u) return (gd_u16)sign;  // below 2**-25 (float subnormals too): rounds to zero
        const gd_u32 m = (ax & 0x7fffffu) | 0x800000u;
        const gd_u32 shift = 126u - e;  // 14..24
        gd_u32 h = m >> shift;
        const gd_u32 rem = m & ((1u << shift) - 1u);
        const gd_u32 half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (h & 1u))) ++h;
        return (gd_u16)(sign | h);
    }
    gd_u32 h = (ax - 0x38000000u) >> 13;  // rebias the exponent (127 -> 15), keep 10 mantissa bits
    const gd_u32 rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent
    return (gd_u16)(sign | h);
}

GD_HD void gd_pre_store(float* out, float v) { *out = v; }
GD_HD void gd_pre_store(gd_u16* out, float v) { *out = gd_pre_f16_bits(v); }

// Rescale and window one stored value (no normalisation).
GD_HD float gd_pre_rescale_window(const GdPreParams& p, float x) {
    float v = gd_addf(gd_mulf(x, p.slope), p.intercept);
    if (p.flags & GD_PRE_WINDOW) {
        if (v <= p.lower) {
            v = p.y_min;
        } else if (v > p.upper) {
            v = p.y_max;
        } else {
            v = gd_addf(gd_mulf(gd_addf(gd_divf(gd_subf(v, p.center), p.width), 0.5f), p.y_range), p.y_min);
            // keeps the transform monotonic where rounding would step outside the window's range
            v = v < p.clamp_lo ? p.clamp_lo : (v > p.clamp_hi ? p.clamp_hi : v);
        }
    }
    return v;
}

// MINMAX: the transform is monotonic, so the range of transformed values is that of the transformed
// input min and max (`range` = {min, max} of the stored values).
template <typename T>
GD_HD void gd_pre_minmax(GdPreParams& p, const T* range) {
    const float a = gd_pre_rescale_window(p, (float)range[0]);
    const float b = gd_pre_rescale_window(p, (float)range[1]);
    const float lo = b < a ? b : a;
    const float hi = b < a ? a : b;
    const float span = gd_subf(hi, lo);
    p.norm_sub = lo;
    p.norm_div = span == 0.f ? 1.f : span;  // a NaN span stays NaN, as NumPy's does
}

// One thread's share of the grid-stride loop over every output sample: n_frames * rows_out * cols_out,
// C order. Returns GD_STATUS_READ_OOB when a table names a source index outside the frame (that tap is
// skipped).
template <typename T, typename O>
GD_HD gd_u32 gd_pre_thread(GdPreParams p, const T* src, const T* range, O* out, GdThread t) {
    if (p.flags & GD_PRE_MINMAX) gd_pre_minmax<T>(p, range);
    const gd_u64 plane_out = (gd_u64)p.rows_out * p.cols_out;
    const gd_u64 plane_in = (gd_u64)p.rows_in * p.cols_in;
    const gd_u64 total = plane_out * p.n_frames;
    gd_u32 status = 0;
    for (gd_u64 o = t.tid; o < total; o += t.nthreads) {
        const gd_u64 f = o / plane_out;
        const gd_u64 rest = o - f * plane_out;
        const gd_u64 i = rest / p.cols_out;
        const gd_u64 j = rest - i * p.cols_out;
        const T* frame = src + f * plane_in;
        float acc = 0.f;
        for (gd_u32 a = 0; a < p.taps_y; ++a) {
            const gd_i32 r = (gd_i32)p.y_idx[i * p.taps_y + a];
            if (r < 0) break;
            if ((gd_u32)r >= p.rows_in) {
                status |= GD_STATUS_READ_OOB;
                continue;
            }
            float row = 0.f;
            for (gd_u32 b = 0; b < p.taps_x; ++b) {
                const gd_i32 c = (gd_i32)p.x_idx[j * p.taps_x + b];
                if (c < 0) break;
                if ((gd_u32)c >= p.cols_in) {
                    status |= GD_STATUS_READ_OOB;
                    continue;
                }
                float v = gd_pre_rescale_window(p, (float)frame[(gd_u64)r * p.cols_in + (gd_u32)c]);
                v = gd_divf(gd_subf(v, p.norm_sub), p.norm_div);
                row = gd_addf(row, gd_mulf(gd_pre_float(p.x_w[j * p.taps_x + b]), v));
            }
            acc = gd_addf(acc, gd_mulf(gd_pre_float(p.y_w[i * p.taps_y + a]), row));
        }
        gd_pre_store(out + o, gd_divf(acc, p.out_div));
    }
    return status;
}

// The parameters of a launch from its plan words (layout above).
GD_HD GdPreParams gd_pre_params(const gd_u32* plan) {
    GdPreParams p;
    p.n_frames = plan[0];
    p.rows_in = plan[1];
    p.cols_in = plan[2];
    p.rows_out = plan[3];
    p.cols_out = plan[4];
    p.taps_y = plan[5];
    p.taps_x = plan[6];
    p.flags = plan[7];
    const gd_u32* fp = plan + GD_PRE_NDIMS;
    p.slope = gd_pre_float(fp[GD_PRE_P_SLOPE]);
    p.intercept = gd_pre_float(fp[GD_PRE_P_INTERCEPT]);
    p.lower = gd_pre_float(fp[GD_PRE_P_LOWER]);
    p.upper = gd_pre_float(fp[GD_PRE_P_UPPER]);
    p.center = gd_pre_float(fp[GD_PRE_P_CENTER]);
    p.width = gd_pre_float(fp[GD_PRE_P_WIDTH]);
    p.y_min = gd_pre_float(fp[GD_PRE_P_Y_MIN]);
    p.y_max = gd_pre_float(fp[GD_PRE_P_Y_MAX]);
    p.y_range = gd_pre_float(fp[GD_PRE_P_Y_RANGE]);
    p.clamp_lo = gd_pre_float(fp[GD_PRE_P_CLAMP_LO]);
    p.clamp_hi = gd_pre_float(fp[GD_PRE_P_CLAMP_HI]);
    p.norm_sub = gd_pre_float(fp[GD_PRE_P_NORM_SUB]);
    p.norm_div = gd_pre_float(fp[GD_PRE_P_NORM_DIV]);
    p.out_div = gd_pre_float(fp[GD_PRE_P_OUT_DIV]);
    const gd_u64 ny = (gd_u64)p.rows_out * p.taps_y;
    const gd_u64 nx = (gd_u64)p.cols_out * p.taps_x;
    p.y_idx = plan + GD_PRE_HEADER;
    p.x_idx = p.y_idx + ny;
    p.y_w = p.x_idx + nx;
    p.x_w = p.y_w + ny;
    return p;
}

// Words in a plan with these table sizes (the host checks a buffer against it).
GD_HD gd_u64 gd_pre_plan_words(const gd_u32* plan) {
    return GD_PRE_HEADER + 2 * ((gd_u64)plan[3] * plan[5] + (gd_u64)plan[4] * plan[6]);
}
