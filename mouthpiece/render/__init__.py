"""Render stage: landmark-driven dense warp of the face crop, mouth interior, eyelids, and
compositing back into the photo. `Renderer(rig).render(values)` → one RGB frame."""

from mouthpiece.render.deform import deform_landmarks
from mouthpiece.render.renderer import Renderer

__all__ = ["Renderer", "deform_landmarks"]
