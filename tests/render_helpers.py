"""Renderer test helpers (importable as ``render_helpers``): a camera that leaves strokes where a threshold
sees them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from text_recognizer.data.synth.render import RenderConfig


def camera_off(cfg: RenderConfig | None = None, **changes: Any) -> RenderConfig:
    """``cfg`` (default :class:`RenderConfig`) photographed without lighting, paper texture, shadow, rules,
    perspective, blur, resolution loss, noise or JPEG, dark ink on light paper; then ``changes``."""
    plain = replace(
        cfg or RenderConfig(),
        p_dark_background=0.0,
        # one ink contrast for every image: fine pens' antialiased strokes are grey, so that a low contrast
        # drawn for one image and a high one for another would change how much ink a threshold counts
        ink_contrast=(0.8, 0.8),
        pressure_variation=(0.0, 0.0),
        paper_texture=(0.0, 0.0),
        lighting_gradient=(0.0, 0.0),
        vignette=(0.0, 0.0),
        p_shadow=0.0,
        p_ruled=0.0,
        p_perspective=0.0,
        p_blur=0.0,
        p_downscale=0.0,
        noise_sigma=(0.0, 0.0),
        p_jpeg=0.0,
    )
    return replace(plain, **changes)
