// __global__ wrappers for native unpacking: index arithmetic only; the logic is in native.cuh.
#include "native.cuh"

#define GD_NATIVE_KERNEL(BITS)                                                                      \
    GD_GLOBAL void gpudcm_native_##BITS(const gd_u8* src, gd_u64 src_len, const gd_i64* frame_offsets, \
                                        gd_u32 n_frames, gd_u32 rows, gd_u32 cols, gd_u32 samples,   \
                                        gd_u32 bits_stored, gd_u32 flags, void* out, gd_u32* status) { \
        const GdNativeParams p = {src, src_len, frame_offsets, n_frames, rows, cols, samples,          \
                                  bits_stored, flags};                                               \
        const GdThread t = {(gd_u64)blockIdx.x * blockDim.x + threadIdx.x,                            \
                            (gd_u64)gridDim.x * blockDim.x};                                         \
        const gd_u32 st = gd_native_thread<BITS>(p, out, t);                                          \
        if (st) atomicOr(status, st);                                                                \
    }

GD_NATIVE_KERNEL(1)
GD_NATIVE_KERNEL(8)
GD_NATIVE_KERNEL(16)
GD_NATIVE_KERNEL(32)
GD_NATIVE_KERNEL(64)
