// __global__ wrappers for the fused grey preprocessing: index arithmetic only; the logic is in
// preprocess.cuh. One kernel per (stored type, output type); float16 output is written as its bits.
#include "preprocess.cuh"

#define GD_PRE_KERNEL(IN, T, OUT, O)                                                                \
    GD_GLOBAL void gpudcm_preprocess_##IN##_##OUT(const T* src, const T* range, const gd_u32* plan, \
                                                  O* out, gd_u32* status) {                        \
        const GdThread t = {(gd_u64)blockIdx.x * blockDim.x + threadIdx.x,                         \
                            (gd_u64)gridDim.x * blockDim.x};                                       \
        const gd_u32 st = gd_pre_thread<T, O>(gd_pre_params(plan), src, range, out, t);            \
        if (st) atomicOr(status, st);                                                              \
    }

#define GD_PRE_KERNELS(IN, T)            \
    GD_PRE_KERNEL(IN, T, f32, float)     \
    GD_PRE_KERNEL(IN, T, f16, gd_u16)

GD_PRE_KERNELS(u8, gd_u8)
GD_PRE_KERNELS(i8, signed char)
GD_PRE_KERNELS(u16, gd_u16)
GD_PRE_KERNELS(i16, short)
GD_PRE_KERNELS(u32, gd_u32)
GD_PRE_KERNELS(i32, gd_i32)
GD_PRE_KERNELS(f32, float)
GD_PRE_KERNELS(f64, double)
