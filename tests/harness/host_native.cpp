// Test-only host build of native.cuh: runs the kernels' __host__ __device__ logic over the launch geometry the
// runtime computes (every block, every thread of the grid-stride loop), for ctypes.
#include "native.cuh"

template <int BITS>
static gd_u32 run_native(const GdNativeParams& p, void* out, gd_u32 grid, gd_u32 block) {
    gd_u32 status = 0;
    const gd_u64 nthreads = (gd_u64)grid * block;
    for (gd_u32 b = 0; b < grid; ++b) {
        for (gd_u32 t = 0; t < block; ++t) {
            const GdThread th = {(gd_u64)b * block + t, nthreads};
            status |= gd_native_thread<BITS>(p, out, th);
        }
    }
    return status;
}

extern "C" gd_u32 gpudcm_host_native(gd_u32 bits, gd_u32 grid, gd_u32 block, const gd_u8* src, gd_u64 src_len,
                                     const gd_i64* frame_offsets, gd_u32 n_frames, gd_u32 rows, gd_u32 cols,
                                     gd_u32 samples, gd_u32 bits_stored, gd_u32 flags, void* out) {
    const GdNativeParams p = {src, src_len, frame_offsets, n_frames, rows, cols, samples, bits_stored, flags};
    switch (bits) {
        case 1: return run_native<1>(p, out, grid, block);
        case 8: return run_native<8>(p, out, grid, block);
        case 16: return run_native<16>(p, out, grid, block);
        case 32: return run_native<32>(p, out, grid, block);
        case 64: return run_native<64>(p, out, grid, block);
        default: return GD_STATUS_BAD_PARAMS;
    }
}
