// YBR_FULL -> RGB (PS3.3 C.7.6.3.1.2), bit for bit as pydicom's convert_color_space computes it: float32
// (Y, Cb - 128, Cr - 128) @ M through NumPy's matmul, + 0.5, floor, clip to 0..255, back to the input type.
// One pixel per loop step, in place over an interleaved (..., 3) array.
#pragma once
#include "common.cuh"

enum {
    // Round every product before adding. NumPy sends (1, 3) @ (3, 3) (images one column wide) to BLAS
    // gemv, which does not fuse; every wider image goes to sgemm, which does.
    GD_COLOUR_UNFUSED = 1u,
};

// floor(v + 0.5) clipped to 0..255, as the output type.
template <typename T>
GD_HD T gd_colour_round(float v) {
    const float r = gd_floorf(gd_addf(v, 0.5f));
    return (T)(r < 0.f ? 0.f : r > 255.f ? 255.f : r);
}

// One (Y, Cb, Cr) triple to (R, G, B) in rgb[0..2]. pydicom's matrix, rounded to float32 as it does:
// R = Y + 1.402 Cr', G = Y - (0.114 * 1.772 / 0.587) Cb' - (0.299 * 1.402 / 0.587) Cr', B = Y + 1.772 Cb'.
// sgemm accumulates column j as fma(a2, M2j, fma(a1, M1j, fma(a0, M0j, 0))) and gemv as
// ((0 + a0 M0j) + a1 M1j) + a2 M2j; with M's ones and zeros both reduce exactly to the forms below.
template <typename T>
GD_HD void gd_ybr_to_rgb(T y_in, T cb_in, T cr_in, gd_u32 flags, T* rgb) {
    const float cr_r = 0x1.66e978p+0f;   // (float)1.402
    const float cb_g = -0x1.606544p-2f;  // (float)(-0.114 * 1.772 / 0.587)
    const float cr_g = -0x1.6da346p-1f;  // (float)(-0.299 * 1.402 / 0.587)
    const float cb_b = 0x1.c5a1cap+0f;   // (float)1.772
    const float y = (float)y_in;  // exact for 8- and 16-bit samples, as are the subtractions
    const float cb = gd_addf((float)cb_in, -128.f);
    const float cr = gd_addf((float)cr_in, -128.f);
    float r, g, b;
    if (flags & GD_COLOUR_UNFUSED) {
        r = gd_addf(y, gd_mulf(cr, cr_r));
        g = gd_addf(gd_addf(y, gd_mulf(cb, cb_g)), gd_mulf(cr, cr_g));
        b = gd_addf(y, gd_mulf(cb, cb_b));
    } else {
        r = gd_fmaf(cr, cr_r, y);
        g = gd_fmaf(cr, cr_g, gd_fmaf(cb, cb_g, y));
        b = gd_fmaf(cb, cb_b, y);
    }
    rgb[0] = gd_colour_round<T>(r);
    rgb[1] = gd_colour_round<T>(g);
    rgb[2] = gd_colour_round<T>(b);
}

// One thread's share of the grid-stride loop over `n_pixels` interleaved triples, converted in place.
template <typename T>
GD_HD void gd_ybr_to_rgb_thread(T* px, gd_u64 n_pixels, gd_u32 flags, GdThread t) {
    for (gd_u64 i = t.tid; i < n_pixels; i += t.nthreads) {
        T* p = px + 3 * i;
        gd_ybr_to_rgb<T>(p[0], p[1], p[2], flags, p);
    }
}
