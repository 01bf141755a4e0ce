// Test-only host build of upsample.cuh: runs the chroma upsampling logic over every block and thread of the
// launch geometry the runtime computes, for ctypes.
#include "upsample.cuh"

extern "C" gd_u32 gpudcm_host_upsample(gd_u32 grid, gd_u32 block, const gd_u8* src, gd_u64 src_len, gd_u32 n_frames,
                                       gd_u32 rows, gd_u32 cols, gd_u32 planes, gd_u64 frame_stride, gd_u32 mode,
                                       const gd_u64* planes_meta, gd_u8* out) {
    const GdUpsampleParams p =
        gd_upsample_params(src, src_len, n_frames, rows, cols, planes, frame_stride, mode, planes_meta);
    gd_u32 status = 0;
    const gd_u64 nthreads = (gd_u64)grid * block;
    for (gd_u32 b = 0; b < grid; ++b) {
        for (gd_u32 t = 0; t < block; ++t) {
            const GdThread th = {(gd_u64)b * block + t, nthreads};
            status |= gd_upsample_thread(p, out, th);
        }
    }
    return status;
}
