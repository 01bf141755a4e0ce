// Test-only host build of colour.cuh: runs the YBR_FULL -> RGB logic over every block and thread of the
// launch geometry the runtime computes, for ctypes.
#include "colour.cuh"

template <typename T>
static void run_colour(void* px, gd_u64 n_pixels, gd_u32 flags, gd_u32 grid, gd_u32 block) {
    const gd_u64 nthreads = (gd_u64)grid * block;
    for (gd_u32 b = 0; b < grid; ++b) {
        for (gd_u32 t = 0; t < block; ++t) {
            const GdThread th = {(gd_u64)b * block + t, nthreads};
            gd_ybr_to_rgb_thread<T>((T*)px, n_pixels, flags, th);
        }
    }
}

extern "C" gd_u32 gpudcm_host_ybr_to_rgb(gd_u32 bits, gd_u32 grid, gd_u32 block, void* px, gd_u64 n_pixels,
                                         gd_u32 flags) {
    switch (bits) {
        case 8: run_colour<gd_u8>(px, n_pixels, flags, grid, block); return 0;
        case 16: run_colour<gd_u16>(px, n_pixels, flags, grid, block); return 0;
        default: return GD_STATUS_BAD_PARAMS;
    }
}
