// Shared definitions for gpudcm kernels. Compiles under NVRTC (device) and g++ (the test-only host
// build), so every __host__ __device__ function can be executed on the CPU in CI.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define GD_HD __host__ __device__ __forceinline__
#define GD_GLOBAL extern "C" __global__
#else
#define GD_HD inline
#endif

#if !defined(__CUDACC_RTC__)  // NVRTC has the math builtins without headers
#include <cmath>
#endif

// NVRTC ships no <stdint.h>; these widths hold on LP64 hosts and on CUDA devices.
typedef unsigned char gd_u8;
typedef unsigned short gd_u16;
typedef unsigned int gd_u32;
typedef int gd_i32;
typedef unsigned long long gd_u64;
typedef long long gd_i64;

// Status bits a kernel ORs into its status word (0 = clean).
enum {
    GD_STATUS_READ_OOB = 1u,    // a read fell outside the source buffer; 0 was used instead
    GD_STATUS_BAD_OFFSET = 2u,  // a frame offset was negative
    GD_STATUS_BAD_PARAMS = 4u,  // parameters no kernel variant accepts
};

// A grid-stride loop's position: thread `tid` of `nthreads`, as the __global__ wrapper computes it
// from blockIdx/blockDim/threadIdx/gridDim and the host build from its loops over the same geometry.
struct GdThread {
    gd_u64 tid;
    gd_u64 nthreads;
};

// Float operations with one fixed rounding each: NVRTC contracts a * b + c into an FMA unless told not
// to, and g++ does the same on FMA targets (-ffp-contract=fast is its default).
GD_HD float gd_fmaf(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
    return __fmaf_rn(a, b, c);
#else
    return std::fma(a, b, c);
#endif
}

GD_HD float gd_mulf(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    volatile float p = a * b;  // the store keeps g++ from fusing the product into a later add
    return p;
#endif
}

GD_HD float gd_addf(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

GD_HD float gd_floorf(float x) {
#if defined(__CUDA_ARCH__)
    return floorf(x);
#else
    return std::floor(x);
#endif
}

GD_HD float gd_subf(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

GD_HD float gd_divf(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
