// Native (uncompressed) pixel data: unpack, byte-swap, mask/sign-extend to Bits Stored, planar to
// interleaved, YBR_FULL_422 expansion. One output sample per loop step; mirrors pydicom's
// Decoder._as_array_native + reshape + _correct_unused_bits.
#pragma once
#include "common.cuh"

enum {
    GD_NATIVE_SIGNED = 1u,        // Pixel Representation 1
    GD_NATIVE_BIG_ENDIAN = 2u,    // samples stored most significant byte first
    GD_NATIVE_PLANAR = 4u,        // Planar Configuration 1 (all of one sample, then the next)
    GD_NATIVE_SWAP_OW = 8u,       // 8-bit big endian OW: bytes swapped pairwise over the element
    GD_NATIVE_YBR422 = 16u,       // YBR_FULL_422: Y1 Y2 Cb Cr on disk, expanded to 3 samples a pixel
    GD_NATIVE_CORRECT_BITS = 32u, // mask (unsigned) or sign-extend (signed) from Bits Stored
};

struct GdNativeParams {
    const gd_u8* src;            // the pixel element's bytes (or a staging copy keeping byte parity)
    gd_u64 src_len;
    const gd_i64* frame_offsets; // per frame: byte offset into src (bit offset for 1-bit data)
    gd_u32 n_frames;
    gd_u32 rows;
    gd_u32 cols;
    gd_u32 samples;
    gd_u32 bits_stored;
    gd_u32 flags;
};

GD_HD gd_u64 gd_native_frame_samples(const GdNativeParams& p) {
    return (gd_u64)p.rows * p.cols * p.samples;
}

// Byte `pos` of the element as pydicom sees it after its pairwise swap (if any); 0 outside src.
GD_HD gd_u32 gd_native_load_byte(const GdNativeParams& p, gd_u64 pos, gd_u8* out) {
    const gd_u64 phys = (p.flags & GD_NATIVE_SWAP_OW) ? (pos ^ 1ull) : pos;
    if (phys >= p.src_len) {
        *out = 0;
        return GD_STATUS_READ_OOB;
    }
    *out = p.src[phys];
    return 0;
}

// Index, within one frame's stored samples, of output sample `e` (interleaved, 3 samples for YBR_422).
GD_HD gd_u64 gd_native_source_index(const GdNativeParams& p, gd_u64 e) {
    gd_u64 x = e;
    if ((p.flags & GD_NATIVE_PLANAR) && p.samples > 1) {
        const gd_u64 plane = (gd_u64)p.rows * p.cols;
        const gd_u64 pixel = e / p.samples;
        const gd_u64 s = e - pixel * p.samples;
        x = s * plane + pixel;  // pydicom reshapes planar data to (samples, rows, cols) then transposes
    }
    if (p.flags & GD_NATIVE_YBR422) {
        // pydicom: out[::6]=in[::4], out[3::6]=in[1::4], out[1::6]=out[4::6]=in[2::4], out[2::6]=out[5::6]=in[3::4]
        const gd_u64 g = x / 6;
        const gd_u64 k = x - g * 6;
        const gd_u64 pick = k == 0 ? 0 : k == 3 ? 1 : (k == 1 || k == 4) ? 2 : 3;
        x = g * 4 + pick;
    }
    return x;
}

// Mask to Bits Stored (unsigned) or sign-extend from it (signed), within a BITS-wide sample.
template <int BITS>
GD_HD gd_u64 gd_native_correct(gd_u64 v, gd_u32 bits_stored, bool is_signed) {
    if (bits_stored == 0 || bits_stored >= (gd_u32)BITS) return v;
    const gd_u64 mask = (1ull << bits_stored) - 1ull;
    v &= mask;
    if (is_signed && ((v >> (bits_stored - 1)) & 1ull)) v |= ~mask;
    return v;
}

// The value of sample `e` of frame `f`, as an unsigned BITS-wide pattern in the low bits.
template <int BITS>
GD_HD gd_u32 gd_native_value(const GdNativeParams& p, gd_u64 f, gd_u64 e, gd_u64* value) {
    const gd_i64 off = p.frame_offsets[f];
    if (off < 0) {
        *value = 0;
        return GD_STATUS_BAD_OFFSET;
    }
    const gd_u64 idx = gd_native_source_index(p, e);
    gd_u32 status = 0;
    if (BITS == 1) {
        const gd_u64 bit = (gd_u64)off + idx;  // frames of 1-bit data may start mid-byte
        gd_u8 b;
        status |= gd_native_load_byte(p, bit >> 3, &b);
        *value = (b >> (bit & 7u)) & 1u;
        return status;
    }
    const int nbytes = BITS / 8;
    const gd_u64 base = (gd_u64)off + idx * (gd_u64)nbytes;
    gd_u64 v = 0;
    for (int i = 0; i < nbytes; ++i) {
        gd_u8 b;
        status |= gd_native_load_byte(p, base + (gd_u64)i, &b);
        const int shift = (p.flags & GD_NATIVE_BIG_ENDIAN) ? 8 * (nbytes - 1 - i) : 8 * i;
        v |= (gd_u64)b << shift;
    }
    if (p.flags & GD_NATIVE_CORRECT_BITS) {
        v = gd_native_correct<BITS>(v, p.bits_stored, (p.flags & GD_NATIVE_SIGNED) != 0);
    }
    *value = v;
    return status;
}

template <int BITS> struct GdStorage { typedef gd_u64 type; };
template <> struct GdStorage<1> { typedef gd_u8 type; };
template <> struct GdStorage<8> { typedef gd_u8 type; };
template <> struct GdStorage<16> { typedef gd_u16 type; };
template <> struct GdStorage<32> { typedef gd_u32 type; };

// One thread's share of the grid-stride loop over every output sample of every frame.
// `out` holds n_frames * rows * cols * samples elements of the BITS-wide type, interleaved.
template <int BITS>
GD_HD gd_u32 gd_native_thread(const GdNativeParams& p, void* out, GdThread t) {
    typedef typename GdStorage<BITS>::type T;
    T* dst = (T*)out;
    const gd_u64 per_frame = gd_native_frame_samples(p);
    const gd_u64 total = per_frame * p.n_frames;
    gd_u32 status = 0;
    for (gd_u64 i = t.tid; i < total; i += t.nthreads) {
        const gd_u64 f = i / per_frame;
        gd_u64 v;
        status |= gd_native_value<BITS>(p, f, i - f * per_frame, &v);
        dst[i] = (T)v;
    }
    return status;
}
