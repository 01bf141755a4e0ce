// __global__ wrappers for YBR_FULL -> RGB in place: index arithmetic only; the logic is in colour.cuh.
#include "colour.cuh"

#define GD_COLOUR_KERNEL(BITS, T)                                                                   \
    GD_GLOBAL void gpudcm_ybr_to_rgb_##BITS(T* px, gd_u64 n_pixels, gd_u32 flags) {                \
        const GdThread t = {(gd_u64)blockIdx.x * blockDim.x + threadIdx.x,                         \
                            (gd_u64)gridDim.x * blockDim.x};                                       \
        gd_ybr_to_rgb_thread<T>(px, n_pixels, flags, t);                                           \
    }

GD_COLOUR_KERNEL(8, gd_u8)
GD_COLOUR_KERNEL(16, gd_u16)
