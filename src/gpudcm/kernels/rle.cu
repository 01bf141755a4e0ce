// __global__ wrapper for RLE Lossless: index arithmetic only; the logic is in rle.cuh.
#include "rle.cuh"

GD_GLOBAL void gpudcm_rle(const gd_u8* src, gd_u64 src_len, const gd_i64* table, gd_u64 n_entries, gd_u64 n_slots,
                          gd_u32 n_segments, gd_u32 bytes_per_sample, gd_u64 plane, gd_u8* out, gd_u64 out_len,
                          gd_i64* lengths, gd_u32* status) {
    const GdRleParams p = {src, src_len, table, n_entries, n_slots, n_segments, bytes_per_sample, plane,
                           out, out_len, lengths};
    const GdThread t = {(gd_u64)blockIdx.x * blockDim.x + threadIdx.x, (gd_u64)gridDim.x * blockDim.x};
    const gd_u32 st = gd_rle_thread(p, t);
    if (st) atomicOr(status, st);
}
