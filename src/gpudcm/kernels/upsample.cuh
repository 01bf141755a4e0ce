// JPEG chroma upsampling + interleave: component planes at their real (subsampled) size, as nvJPEG's
// NVJPEG_OUTPUT_UNCHANGED returns them, to (frames, rows, cols, components), in one of two modes:
//
// GD_UPSAMPLE_TURBO: as libjpeg's "fancy" upsampler computes it (IJG/libjpeg-turbo jdsample.c:
//   h2v1_fancy_upsample, h2v2_fancy_upsample, with their integer rounding and edge handling; planes at
//   most 2 samples wide are replicated, as libjpeg does).
// GD_UPSAMPLE_RICHTER: as Thomas Richter's libjpeg (pylibjpeg-libjpeg, pydicom's default JPEG plugin)
//   computes it (upsampling/upsampler.cpp, upsamplerbase.cpp; colortrafo/ycbcrtrafo.cpp):
//   - it upsamples the IDCT output with COLOR_BITS = 4 fraction bits (x16), before clamping; the colour
//     transform (Identity when no RGB output is asked, as pydicom asks) then rounds (v + 8) >> 4 and clamps.
//     nvJPEG gives integer, clamped samples, so here the x16 value is 16 * sample: the fraction bits and
//     out-of-range IDCT values Richter keeps are gone (the remaining difference, <= 1 on 8-bit YCbCr);
//   - vertically (sy = 2), rows are clamped at the plane's edges: (3 * nearer + further) / 4, exact at x16;
//   - horizontally (sx = 2), columns clamped at the edges (line buffer copies dest[-1] = dest[0],
//     dest[W] = dest[W-1]): output 2i = (3 v[i] + v[i-1] + 2) >> 2, 2i+1 = (3 v[i] + v[i+1] + 1) >> 2,
//     except that HorizontalFilterCore<2> filters each 8-sample block in place, so output 8k+1 reads the
//     already written output 8k+2 where it should read v[4k+1]: (3 v[4k] + out[8k+2] + 1) >> 2.
//   (4:1:1 and 4:4:0 are not routed to nvJPEG, so not here: Richter's HorizontalFilterCore<4> saves src[0]
//   before it overwrites it; Upsampler<1,2> is VerticalFilterCore<2> alone.)
// One output sample per loop step.
#pragma once
#include "common.cuh"

#define GD_UPSAMPLE_MAX_PLANES 4
#define GD_UPSAMPLE_TURBO 0u
#define GD_UPSAMPLE_RICHTER 1u

struct GdUpsampleParams {
    const gd_u8* src;        // every plane of every frame: frame-major, plane after plane, rows packed
    gd_u64 src_len;
    gd_u32 n_frames;
    gd_u32 rows;
    gd_u32 cols;
    gd_u32 planes;           // components (1..GD_UPSAMPLE_MAX_PLANES)
    gd_u64 frame_stride;     // bytes of one frame's planes
    gd_u64 offset[GD_UPSAMPLE_MAX_PLANES];  // plane start within a frame
    gd_u32 height[GD_UPSAMPLE_MAX_PLANES];
    gd_u32 width[GD_UPSAMPLE_MAX_PLANES];
    gd_u32 fy[GD_UPSAMPLE_MAX_PLANES];      // row expansion (1 or 2): max v factor / this component's v
    gd_u32 fx[GD_UPSAMPLE_MAX_PLANES];      // column expansion (1 or 2)
    gd_u32 mode;                            // GD_UPSAMPLE_TURBO or GD_UPSAMPLE_RICHTER
};

// The parameters from the launch's scalars and its per-plane table (offset, height, width, fy, fx).
GD_HD GdUpsampleParams gd_upsample_params(const gd_u8* src, gd_u64 src_len, gd_u32 n_frames, gd_u32 rows, gd_u32 cols,
                                          gd_u32 planes, gd_u64 frame_stride, gd_u32 mode, const gd_u64* meta) {
    GdUpsampleParams p = {src, src_len, n_frames, rows, cols, planes, frame_stride, {0}, {0}, {0}, {0}, {0}, mode};
    for (gd_u32 k = 0; k < planes && k < GD_UPSAMPLE_MAX_PLANES; ++k) {
        p.offset[k] = meta[5 * k];
        p.height[k] = (gd_u32)meta[5 * k + 1];
        p.width[k] = (gd_u32)meta[5 * k + 2];
        p.fy[k] = (gd_u32)meta[5 * k + 3];
        p.fx[k] = (gd_u32)meta[5 * k + 4];
    }
    return p;
}

// Sample (r, c) of plane k of frame f, clamped to the plane (libjpeg replicates edge rows as context).
GD_HD gd_u32 gd_upsample_at(const GdUpsampleParams& p, gd_u64 f, gd_u32 k, gd_i64 r, gd_i64 c, gd_u32* status) {
    const gd_i64 h = (gd_i64)p.height[k], w = (gd_i64)p.width[k];
    if (h <= 0 || w <= 0) {
        *status |= GD_STATUS_BAD_PARAMS;
        return 0;
    }
    r = r < 0 ? 0 : (r >= h ? h - 1 : r);
    c = c < 0 ? 0 : (c >= w ? w - 1 : c);
    // every term is checked against the buffer on its own, so no sum can wrap past it
    const gd_u64 in_frame = p.offset[k] + (gd_u64)r * (gd_u64)w + (gd_u64)c;
    if (p.frame_stride && f >= p.src_len / p.frame_stride) {
        *status |= GD_STATUS_READ_OOB;
        return 0;
    }
    const gd_u64 base = f * p.frame_stride;
    if (p.offset[k] >= p.src_len || in_frame >= p.src_len - base) {
        *status |= GD_STATUS_READ_OOB;
        return 0;
    }
    return p.src[base + in_frame];
}

// libjpeg's vertical context sum for output row `y` of a v2 component: 3 * nearer + further input row.
GD_HD gd_u32 gd_upsample_colsum(const GdUpsampleParams& p, gd_u64 f, gd_u32 k, gd_u32 y, gd_i64 c, gd_u32* status) {
    const gd_i64 r = (gd_i64)(y >> 1);
    const gd_i64 other = (y & 1u) ? r + 1 : r - 1;  // the row below for the lower output row, above otherwise
    return 3u * gd_upsample_at(p, f, k, r, c, status) + gd_upsample_at(p, f, k, other, c, status);
}

// Richter's vertical pass at x16 for output row `y`, input column c: 16 * sample, or for sy = 2
// (3 * nearer + further) * 4, where its (t + 3 c + 1 or 2) >> 2 on x16 values is exact.
GD_HD gd_u32 gd_richter_vertical(const GdUpsampleParams& p, gd_u64 f, gd_u32 k, gd_u32 y, gd_i64 c, gd_u32* status) {
    if (p.fy[k] == 1) return 16u * gd_upsample_at(p, f, k, y, c, status);
    return 4u * gd_upsample_colsum(p, f, k, y, c, status);
}

// Richter's horizontal pass (x16) at output column x from the vertical values; in-place read at 8k+1.
GD_HD gd_u32 gd_richter_horizontal(const GdUpsampleParams& p, gd_u64 f, gd_u32 k, gd_u32 y, gd_u32 x, gd_u32* status) {
    const gd_i64 i = (gd_i64)(x >> 1);
    const gd_u32 v = 3u * gd_richter_vertical(p, f, k, y, i, status);
    if (!(x & 1u)) return (v + gd_richter_vertical(p, f, k, y, i - 1, status) + 2u) >> 2;
    if ((x & 7u) == 1u) {  // out[8k+2], already written over input 4k+1
        const gd_u32 next = (gd_richter_vertical(p, f, k, y, i, status) +
                             3u * gd_richter_vertical(p, f, k, y, i + 1, status) + 2u) >> 2;
        return (v + next + 1u) >> 2;
    }
    return (v + gd_richter_vertical(p, f, k, y, i + 1, status) + 1u) >> 2;
}

// Output sample (y, x) of component k of frame f, as Richter's libjpeg computes it (see the top).
GD_HD gd_u8 gd_upsample_richter(const GdUpsampleParams& p, gd_u64 f, gd_u32 k, gd_u32 y, gd_u32 x, gd_u32* status) {
    const gd_u32 fy = p.fy[k], fx = p.fx[k];
    if (fy == 0 || fy > 2 || fx == 0 || fx > 2 || (fx == 1 && fy == 2)) {  // h1v2 and wider are not routed here
        *status |= GD_STATUS_BAD_PARAMS;
        return 0;
    }
    const gd_u32 v16 = fx == 1 ? gd_richter_vertical(p, f, k, y, x, status) : gd_richter_horizontal(p, f, k, y, x, status);
    const gd_u32 v = (v16 + 8u) >> 4;  // COLOR_TO_INT; never negative here, clamped above
    return (gd_u8)(v > 255u ? 255u : v);
}

// Output sample (y, x) of component k of frame f.
GD_HD gd_u8 gd_upsample_value(const GdUpsampleParams& p, gd_u64 f, gd_u32 k, gd_u32 y, gd_u32 x, gd_u32* status) {
    const gd_u32 fy = p.fy[k], fx = p.fx[k];
    if (fx == 1 && fy == 1) return (gd_u8)gd_upsample_at(p, f, k, y, x, status);
    if (p.mode == GD_UPSAMPLE_RICHTER) return gd_upsample_richter(p, f, k, y, x, status);
    if (p.mode != GD_UPSAMPLE_TURBO) {
        *status |= GD_STATUS_BAD_PARAMS;
        return 0;
    }
    if (fy == 0 || fy > 2 || fx != 2) {  // h1v2 and wider factors are not routed here
        *status |= GD_STATUS_BAD_PARAMS;
        return 0;
    }
    const gd_i64 i = (gd_i64)(x >> 1);
    const bool right = (x & 1u) != 0;
    const gd_i64 w = (gd_i64)p.width[k];
    if (w <= 2) {  // libjpeg: fancy upsampling needs more than 2 input columns; plain replication
        return (gd_u8)gd_upsample_at(p, f, k, fy == 2 ? (gd_i64)(y >> 1) : (gd_i64)y, i, status);
    }
    if (fy == 1) {  // h2v1_fancy_upsample
        const gd_u32 c0 = 3u * gd_upsample_at(p, f, k, y, i, status);
        if (!right) return (gd_u8)(i == 0 ? c0 / 3u : (c0 + gd_upsample_at(p, f, k, y, i - 1, status) + 1u) >> 2);
        return (gd_u8)(i == w - 1 ? c0 / 3u : (c0 + gd_upsample_at(p, f, k, y, i + 1, status) + 2u) >> 2);
    }
    // h2v2_fancy_upsample: triangle filter on the column sums, rounding +8 (left) / +7 (right)
    const gd_u32 s = gd_upsample_colsum(p, f, k, y, i, status);
    if (!right) {
        if (i == 0) return (gd_u8)((s * 4u + 8u) >> 4);
        return (gd_u8)((s * 3u + gd_upsample_colsum(p, f, k, y, i - 1, status) + 8u) >> 4);
    }
    if (i == w - 1) return (gd_u8)((s * 4u + 7u) >> 4);
    return (gd_u8)((s * 3u + gd_upsample_colsum(p, f, k, y, i + 1, status) + 7u) >> 4);
}

// One thread's share of the grid-stride loop over every output sample (frames, rows, cols, planes).
GD_HD gd_u32 gd_upsample_thread(const GdUpsampleParams& p, gd_u8* out, GdThread t) {
    gd_u32 status = 0;
    if (p.planes == 0 || p.planes > GD_UPSAMPLE_MAX_PLANES) return GD_STATUS_BAD_PARAMS;
    const gd_u64 per_frame = (gd_u64)p.rows * p.cols * p.planes;
    const gd_u64 total = per_frame * p.n_frames;
    for (gd_u64 e = t.tid; e < total; e += t.nthreads) {
        const gd_u64 f = e / per_frame;
        const gd_u64 rem = e - f * per_frame;
        const gd_u32 k = (gd_u32)(rem % p.planes);
        const gd_u64 pixel = rem / p.planes;
        const gd_u32 y = (gd_u32)(pixel / p.cols), x = (gd_u32)(pixel % p.cols);
        out[e] = gd_upsample_value(p, f, k, y, x, &status);
    }
    return status;
}
