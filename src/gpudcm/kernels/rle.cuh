// RLE Lossless (PS3.5 Annex G): PackBits segments decoded into pydicom's frame layout (planar, each
// value little endian). One group of up to 32 lanes per table entry; every lane walks the same packet
// headers and writes only the run bytes whose output position is its own modulo the group size, so
// lanes never communicate. Mirrors pydicom's rle._rle_decode_segment, and also replays
// pylibjpeg-rle 2.2's stricter walk (which pydicom tries first) so the host can tell which decoder
// pydicom's result comes from.
#pragma once
#include "common.cuh"

enum {
    GD_RLE_STATUS_SHORT = 8u,       // a written segment decoded fewer bytes than Rows x Columns
    GD_RLE_STATUS_WRITE_OOB = 16u,  // an output byte fell outside `out` and was dropped
};

#define GD_RLE_LANES 32u
// Table value meaning "do not replay pylibjpeg-rle for this entry" (INT64_MIN).
#define GD_RLE_NO_ROOM (-9223372036854775807ll - 1ll)
// pylibjpeg-rle's outcome besides a decoded length: a ValueError, or a Rust panic.
#define GD_RLE_J_ERROR (-1ll)
#define GD_RLE_J_PANIC (-2ll)

struct GdRleParams {
    const gd_u8* src;     // every selected frame's bytes
    gd_u64 src_len;
    const gd_i64* table;  // 3 x n_entries: segment start, segment end (absolute in src), pylibjpeg room
    gd_u64 n_entries;
    gd_u64 n_slots;       // entries [0, n_slots) write frame e / n_segments; the rest only measure
    gd_u32 n_segments;    // per frame: samples x bytes_per_sample, first segment = most significant byte
    gd_u32 bytes_per_sample;
    gd_u64 plane;         // Rows x Columns: bytes kept from each segment
    gd_u8* out;           // n_slots / n_segments frames of n_segments x plane bytes
    gd_u64 out_len;
    gd_i64* lengths;      // 2 x n_entries out: decoded length (pydicom), pylibjpeg-rle result
};

// pylibjpeg-rle 2.2's _decode_segment_into_frame, replayed on lengths only. `room` is the frame
// vector's length minus the segment's first index there; element k lands at k * bpp of that.
struct GdRleReplay {
    gd_i64 room;
    gd_i64 bpp;
    gd_i64 k;       // elements written so far
    gd_i64 result;  // returned length, GD_RLE_J_ERROR or GD_RLE_J_PANIC once done
    bool active;
};

GD_HD void gd_rle_replay_finish(GdRleReplay& r, gd_i64 result) {
    r.result = result;
    r.active = false;
}

// One non-empty run of n elements whose source bytes are all present; a literal's data starts at `pos`
// of the segment.
GD_HD void gd_rle_replay_run(GdRleReplay& r, gd_i64 n, bool literal, gd_i64 pos) {
    const gd_i64 rel = r.k * r.bpp;
    if (rel + n > r.room) {
        // "excess padding": copies (room - rel) elements with stride bpp, then returns
        if (rel > r.room) {
            // room - rel wraps: a literal's `pos..pos + (room - rel)` is then empty unless it wraps
            // below zero, a replicate's `0..(room - rel)` indexes past the vector
            const bool empty = literal && pos >= rel - r.room;
            return gd_rle_replay_finish(r, empty ? r.k : GD_RLE_J_PANIC);
        }
        const gd_i64 m = r.room - rel;
        if (m > 0 && rel + (m - 1) * r.bpp >= r.room) return gd_rle_replay_finish(r, GD_RLE_J_PANIC);
        return gd_rle_replay_finish(r, r.k + m);
    }
    if (rel + (n - 1) * r.bpp >= r.room) return gd_rle_replay_finish(r, GD_RLE_J_PANIC);
    r.k += n;
}

// This lane's share of output positions [o, o + n) below `plane`, each at stride bpp from `base`.
GD_HD gd_u32 gd_rle_put(const GdRleParams& p, gd_u64 base, gd_u64 o, gd_u64 n, const gd_u8* literal,
                        gd_u8 value, gd_u32 lane, gd_u32 nlanes) {
    const gd_u64 stop = (o + n < p.plane) ? o + n : p.plane;
    gd_u32 status = 0;
    for (gd_u64 q = o + (lane + nlanes - (gd_u32)(o % nlanes)) % nlanes; q < stop; q += nlanes) {
        const gd_u64 dst = base + q * p.bytes_per_sample;
        if (dst >= p.out_len) {
            status |= GD_RLE_STATUS_WRITE_OOB;
            continue;
        }
        p.out[dst] = literal ? literal[q - o] : value;
    }
    return status;
}

// Entry `e` by lane `lane` of `nlanes`: decode, write this lane's bytes, lane 0 records the lengths.
GD_HD gd_u32 gd_rle_segment(const GdRleParams& p, gd_u64 e, gd_u32 lane, gd_u32 nlanes) {
    gd_u32 status = 0;
    gd_i64 start = p.table[e];
    gd_i64 end = p.table[p.n_entries + e];
    const gd_i64 room = p.table[2 * p.n_entries + e];
    // Ranges come from validated plans; a lying one is clamped to the buffer and flagged.
    const gd_i64 limit = (gd_i64)p.src_len;
    if (start < 0 || end < start || end > limit) {
        status |= GD_STATUS_READ_OOB;
        if (end > limit) end = limit;
        if (end < 0) end = 0;
        if (start < 0) start = 0;
        if (start > end) start = end;
    }
    const gd_u8* s = p.src + start;
    const gd_u64 len = (gd_u64)(end - start);

    const bool write = e < p.n_slots;
    gd_u64 base = 0;
    if (write) {
        const gd_u64 bps = p.bytes_per_sample;
        const gd_u64 f = e / p.n_segments;
        const gd_u64 k = e - f * p.n_segments;  // k = sample * bps + j, j = 0 the most significant byte
        const gd_u64 sample = k / bps;
        const gd_u64 j = k - sample * bps;
        base = f * p.n_segments * p.plane + sample * bps * p.plane + (bps - 1 - j);
    }

    GdRleReplay r = {room, (gd_i64)p.bytes_per_sample, 0, GD_RLE_J_ERROR, room != GD_RLE_NO_ROOM};
    if (r.active && len == 0) gd_rle_replay_finish(r, GD_RLE_J_PANIC);  // src.len() - 1 underflows

    gd_u64 decoded = 0;
    gd_u64 pos = 0;
    // Once `plane` bytes are out and the replay is done, the rest changes nothing that is reported.
    while (pos < len && (decoded < p.plane || r.active)) {
        const gd_u64 hp = pos;
        const gd_u32 h = s[pos++];
        if (h < 128u) {
            // literal: the next h + 1 bytes, or what the segment still holds
            const gd_u64 n = h + 1u;
            const gd_u64 avail = (len - pos < n) ? len - pos : n;
            if (write) status |= gd_rle_put(p, base, decoded, avail, s + pos, 0, lane, nlanes);
            decoded += avail;
            if (r.active) {
                if (hp + 1u + h > len - 1u) gd_rle_replay_finish(r, GD_RLE_J_ERROR);
                else gd_rle_replay_run(r, (gd_i64)n, true, (gd_i64)pos);
            }
            pos += n;
        } else if (h > 128u) {
            // replicate: the next byte 257 - h times; nothing when the byte is missing
            const gd_u64 n = 257u - h;
            const bool present = pos < len;
            if (present && write) status |= gd_rle_put(p, base, decoded, n, 0, s[pos], lane, nlanes);
            if (present) decoded += n;
            if (r.active) {
                if (hp + 1u > len - 1u) gd_rle_replay_finish(r, GD_RLE_J_ERROR);
                else gd_rle_replay_run(r, (gd_i64)n, false, (gd_i64)pos);
            }
            pos += 1;
        }
        // h == 128 is a no-op in both decoders
        if (r.active && pos >= len - 1u) gd_rle_replay_finish(r, r.k);
    }
    if (r.active) gd_rle_replay_finish(r, r.k);

    if (write && decoded < p.plane) status |= GD_RLE_STATUS_SHORT;
    if (lane == 0) {
        p.lengths[e] = (gd_i64)decoded;
        p.lengths[p.n_entries + e] = r.result;
    }
    return status;
}

// One thread's share: threads form groups of min(32, nthreads) consecutive lanes; group g decodes
// entries g, g + ngroups, ... (a warp per entry on the device when blocks are multiples of 32).
GD_HD gd_u32 gd_rle_thread(const GdRleParams& p, GdThread t) {
    if (p.n_segments == 0 || p.bytes_per_sample == 0 || p.n_segments % p.bytes_per_sample != 0 ||
        p.n_slots > p.n_entries || t.nthreads == 0)
        return GD_STATUS_BAD_PARAMS;
    const gd_u32 nlanes = t.nthreads < GD_RLE_LANES ? (gd_u32)t.nthreads : GD_RLE_LANES;
    const gd_u64 ngroups = t.nthreads / nlanes;
    const gd_u64 group = t.tid / nlanes;
    const gd_u32 lane = (gd_u32)(t.tid - group * nlanes);
    if (group >= ngroups) return 0;  // the tail of a grid that is not a multiple of the group size
    gd_u32 status = 0;
    for (gd_u64 e = group; e < p.n_entries; e += ngroups) status |= gd_rle_segment(p, e, lane, nlanes);
    return status;
}
