// Test-only host build of preprocess.cuh: runs the fused preprocessing logic over every block and thread
// of the launch geometry the runtime computes, for ctypes; plus the float32 -> float16 rounding alone.
#include "preprocess.cuh"

template <typename T, typename O>
static gd_u32 run_preprocess(const void* src, const void* range, const gd_u32* plan, void* out, gd_u32 grid,
                             gd_u32 block) {
    const GdPreParams p = gd_pre_params(plan);
    const gd_u64 nthreads = (gd_u64)grid * block;
    gd_u32 status = 0;
    for (gd_u32 b = 0; b < grid; ++b) {
        for (gd_u32 t = 0; t < block; ++t) {
            const GdThread th = {(gd_u64)b * block + t, nthreads};
            status |= gd_pre_thread<T, O>(p, (const T*)src, (const T*)range, (O*)out, th);
        }
    }
    return status;
}

template <typename T>
static gd_u32 run_out(gd_u32 out_code, const void* src, const void* range, const gd_u32* plan, void* out,
                      gd_u32 grid, gd_u32 block) {
    switch (out_code) {
        case 0: return run_preprocess<T, float>(src, range, plan, out, grid, block);
        case 1: return run_preprocess<T, gd_u16>(src, range, plan, out, grid, block);
        default: return GD_STATUS_BAD_PARAMS;
    }
}

// in_code: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 f64; out_code: 0 float32, 1 float16 bits.
// `plan_words` is the length of `plan`; a plan whose tables do not fit it is refused.
extern "C" gd_u32 gpudcm_host_preprocess(gd_u32 in_code, gd_u32 out_code, gd_u32 grid, gd_u32 block,
                                         const void* src, const void* range, const gd_u32* plan,
                                         gd_u64 plan_words, void* out) {
    if (plan_words < GD_PRE_HEADER || gd_pre_plan_words(plan) != plan_words) return GD_STATUS_BAD_PARAMS;
    switch (in_code) {
        case 0: return run_out<gd_u8>(out_code, src, range, plan, out, grid, block);
        case 1: return run_out<signed char>(out_code, src, range, plan, out, grid, block);
        case 2: return run_out<gd_u16>(out_code, src, range, plan, out, grid, block);
        case 3: return run_out<short>(out_code, src, range, plan, out, grid, block);
        case 4: return run_out<gd_u32>(out_code, src, range, plan, out, grid, block);
        case 5: return run_out<gd_i32>(out_code, src, range, plan, out, grid, block);
        case 6: return run_out<float>(out_code, src, range, plan, out, grid, block);
        case 7: return run_out<double>(out_code, src, range, plan, out, grid, block);
        default: return GD_STATUS_BAD_PARAMS;
    }
}

extern "C" void gpudcm_host_f32_to_f16(const float* src, gd_u16* out, gd_u64 n) {
    for (gd_u64 i = 0; i < n; ++i) out[i] = gd_pre_f16_bits(src[i]);
}
