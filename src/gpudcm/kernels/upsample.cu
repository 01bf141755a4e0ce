// __global__ wrapper for JPEG chroma upsampling: index arithmetic only; the logic is in upsample.cuh.
#include "upsample.cuh"

// `planes_meta` holds, per plane k: offset, height, width, fy, fx at [5 * k .. 5 * k + 4].
GD_GLOBAL void gpudcm_upsample_8(const gd_u8* src, gd_u64 src_len, gd_u32 n_frames, gd_u32 rows, gd_u32 cols,
                                 gd_u32 planes, gd_u64 frame_stride, gd_u32 mode, const gd_u64* planes_meta, gd_u8* out,
                                 gd_u32* status) {
    GdUpsampleParams p = gd_upsample_params(src, src_len, n_frames, rows, cols, planes, frame_stride, mode, planes_meta);
    const GdThread t = {(gd_u64)blockIdx.x * blockDim.x + threadIdx.x, (gd_u64)gridDim.x * blockDim.x};
    const gd_u32 st = gd_upsample_thread(p, out, t);
    if (st) atomicOr(status, st);
}
