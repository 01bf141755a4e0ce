"""The colour of pixels no frame holds (missing TILED_SPARSE tiles, outside the matrix when padding).

PS3.3 C.8.12.4 (Whole Slide Microscopy Image Module): Recommended Absent Pixel CIELab Value (0048,0015)
gives it as a PCS CIELab triplet scaled like Recommended Display CIELab Value (L* 0..100 -> 0..0xFFFF,
a*/b* -128..127 -> 0..0xFFFF, D50). Without it we use white, the colour of an empty glass slide (and what
wsidicom and OpenSlide show for colour slides; wsidicom paints MONOCHROME2 black, we paint it white too).
"""

from __future__ import annotations

import numpy as np

# Bradford-adapted D50 -> D65, then XYZ (D65) -> linear sRGB (IEC 61966-2-1)
_D50 = np.array([0.9642, 1.0, 0.8251])
_BRADFORD_D50_D65 = np.array([[0.9555766, -0.0230393, 0.0631636],
                              [-0.0282895, 1.0099416, 0.0210077],
                              [0.0122982, -0.0204830, 1.3299098]])
_XYZ_TO_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                         [-0.9692660, 1.8760108, 0.0415560],
                         [0.0556434, -0.2040259, 1.0572252]])


def _lab_to_xyz(lab: np.ndarray) -> np.ndarray:
    L, a, b = lab
    fy = (L + 16) / 116
    f = np.array([fy + a / 500, fy, fy - b / 200])
    eps = 6 / 29
    xyz = np.where(f > eps, f**3, 3 * eps**2 * (f - 4 / 29))
    return xyz * _D50


def _srgb_gamma(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0, 1)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def dicom_lab(value) -> np.ndarray:
    """DICOM-scaled CIELab (three 0..65535 integers) -> (L*, a*, b*)."""
    v = np.asarray([int(x) for x in value], dtype=np.float64)
    return np.array([v[0] * 100 / 65535, v[1] * 255 / 65535 - 128, v[2] * 255 / 65535 - 128])


def background_value(ds, samples: int, photometric: str, dtype=np.uint8) -> np.ndarray:
    """The fill value, one entry per sample, in the decoded output's space (RGB or grey)."""
    top = np.iinfo(dtype).max if np.dtype(dtype).kind in "ui" else 1.0
    lab = ds.get("RecommendedAbsentPixelCIELabValue") if ds is not None else None
    if lab is not None and len(lab) == 3:
        L, a, b = dicom_lab(lab)
        if samples == 1:
            y = _lab_to_xyz(np.array([L, 0.0, 0.0]))[1]  # luminance
            grey = float(_srgb_gamma(np.array(y)))
            grey = 1 - grey if photometric == "MONOCHROME1" else grey
            return np.array([round(grey * top)], dtype=dtype)
        rgb = _srgb_gamma(_XYZ_TO_SRGB @ (_BRADFORD_D50_D65 @ _lab_to_xyz(np.array([L, a, b]))))
        return np.round(rgb * top).astype(dtype)
    if samples == 1:
        return np.array([0 if photometric == "MONOCHROME1" else top], dtype=dtype)
    return np.full(samples, top, dtype=dtype)
