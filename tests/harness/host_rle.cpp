// Test-only host build of rle.cuh: runs the RLE logic over every block and thread of the launch geometry
// the runtime computes (every lane of every group of the grid-stride loop), for ctypes.
#include "rle.cuh"

extern "C" gd_u32 gpudcm_host_rle(gd_u32 grid, gd_u32 block, const gd_u8* src, gd_u64 src_len, const gd_i64* table,
                                  gd_u64 n_entries, gd_u64 n_slots, gd_u32 n_segments, gd_u32 bytes_per_sample,
                                  gd_u64 plane, gd_u8* out, gd_u64 out_len, gd_i64* lengths) {
    const GdRleParams p = {src, src_len, table, n_entries, n_slots, n_segments, bytes_per_sample, plane,
                           out, out_len, lengths};
    gd_u32 status = 0;
    const gd_u64 nthreads = (gd_u64)grid * block;
    for (gd_u32 b = 0; b < grid; ++b) {
        for (gd_u32 t = 0; t < block; ++t) {
            const GdThread th = {(gd_u64)b * block + t, nthreads};
            status |= gd_rle_thread(p, th);
        }
    }
    return status;
}
