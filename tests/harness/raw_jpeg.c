/* Test-only stand-in for nvJPEG's NVJPEG_OUTPUT_UNCHANGED decode: the system libjpeg(-turbo) decodes an
 * 8-bit DCT JPEG with jpeg_read_raw_data, which returns each component's IDCT output at the component's
 * own (subsampled) size, before any upsampling or colour conversion (libjpeg.txt, "Raw (downsampled)
 * image data"). Built by tests/harness/standins.py, loaded with ctypes. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

#ifdef __cplusplus
#define GD_EXPORT extern "C"
#else
#define GD_EXPORT
#endif

struct gd_err { struct jpeg_error_mgr pub; jmp_buf jump; char msg[JMSG_LENGTH_MAX]; };

static void gd_error_exit(j_common_ptr cinfo) {
    struct gd_err* err = (struct gd_err*)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->msg);
    longjmp(err->jump, 1);
}

/* Header: components, and per component (height, width) of its real plane. Returns 0 on success. */
GD_EXPORT int gd_raw_jpeg_info(const unsigned char* data, unsigned long size, int* n, int* heights, int* widths,
                     char* msg, int msg_len) {
    struct jpeg_decompress_struct cinfo;
    struct gd_err err;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = gd_error_exit;
    if (setjmp(err.jump)) {
        snprintf(msg, msg_len, "%s", err.msg);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.raw_data_out = TRUE;
    cinfo.out_color_space = cinfo.jpeg_color_space;
    jpeg_calc_output_dimensions(&cinfo);
    *n = cinfo.num_components;
    for (int c = 0; c < cinfo.num_components && c < 4; ++c) {
        heights[c] = (int)cinfo.comp_info[c].downsampled_height;
        widths[c] = (int)cinfo.comp_info[c].downsampled_width;
    }
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

/* Decode into planes[c] (heights[c] x widths[c] bytes each, rows packed). Returns 0 on success. */
GD_EXPORT int gd_raw_jpeg_decode(const unsigned char* data, unsigned long size, unsigned char** planes, char* msg, int msg_len) {
    struct jpeg_decompress_struct cinfo;
    struct gd_err err;
    JSAMPROW rows[4][4 * DCTSIZE];
    JSAMPARRAY arrays[4];
    JSAMPLE* volatile scratch = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = gd_error_exit;
    if (setjmp(err.jump)) {
        snprintf(msg, msg_len, "%s", err.msg);
        jpeg_destroy_decompress(&cinfo);
        free(scratch);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.num_components > 4 || cinfo.data_precision != 8) {
        snprintf(msg, msg_len, "only 8-bit JPEG with up to 4 components");
        jpeg_destroy_decompress(&cinfo);
        return 2;
    }
    cinfo.raw_data_out = TRUE;
    cinfo.do_fancy_upsampling = FALSE;
    cinfo.out_color_space = cinfo.jpeg_color_space;  /* no colour conversion */
    jpeg_start_decompress(&cinfo);
    const int vmax = cinfo.max_v_samp_factor;
    size_t stride = 0;
    for (int c = 0; c < cinfo.num_components; ++c) {
        const size_t w = (size_t)cinfo.comp_info[c].width_in_blocks * DCTSIZE;
        if (w > stride) stride = w;
    }
    scratch = (JSAMPLE*)malloc(stride * 4 * DCTSIZE * 4);
    if (!scratch) {
        snprintf(msg, msg_len, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return 2;
    }
    for (int c = 0; c < cinfo.num_components; ++c) {
        for (int r = 0; r < cinfo.comp_info[c].v_samp_factor * DCTSIZE; ++r)
            rows[c][r] = scratch + ((size_t)c * 4 * DCTSIZE + r) * stride;
        arrays[c] = rows[c];
    }
    unsigned done[4] = {0, 0, 0, 0};
    while (cinfo.output_scanline < cinfo.output_height) {
        jpeg_read_raw_data(&cinfo, arrays, vmax * DCTSIZE);
        for (int c = 0; c < cinfo.num_components; ++c) {
            jpeg_component_info* comp = &cinfo.comp_info[c];
            const unsigned h = comp->downsampled_height, w = comp->downsampled_width;
            for (int r = 0; r < comp->v_samp_factor * DCTSIZE && done[c] < h; ++r, ++done[c]) {
                memcpy(planes[c] + (size_t)done[c] * w, rows[c][r], w);
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(scratch);
    return 0;
}
