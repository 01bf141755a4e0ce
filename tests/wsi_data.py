"""The test pyramids: written by gpudcm.wsi.synthetic (shared with the wsi bench workload)."""

from gpudcm.wsi.synthetic import *  # noqa: F401,F403
from gpudcm.wsi.synthetic import make_pyramid, source_image  # noqa: F401
