"""Index sets of the 468-point MediaPipe FaceMesh that several stages need.

"Left"/"right" are the subject's own sides (subject's left = image right in a frontal photo).
Contours are ordered so they can be drawn or filled as polygons.
"""

from __future__ import annotations

# Lips. Outer contour: corner 61 → upper lip → corner 291 → lower lip back to 61.
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
LIPS_OUTER = LIPS_OUTER_UPPER + LIPS_OUTER_LOWER[1:-1]
LIPS_INNER = LIPS_INNER_UPPER + LIPS_INNER_LOWER[1:-1]
MOUTH_CORNER_R, MOUTH_CORNER_L = 61, 291  # outer corners (subject's right, left)
INNER_CORNER_R, INNER_CORNER_L = 78, 308
UPPER_LIP_INNER_MID, LOWER_LIP_INNER_MID = 13, 14
UPPER_LIP_OUTER_MID, LOWER_LIP_OUTER_MID = 0, 17

# Eyes: upper lid from outer to inner corner, lower lid likewise.
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362

RIGHT_BROW = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107)
LEFT_BROW = (276, 283, 282, 295, 285, 300, 293, 334, 296, 336)

# Face oval, clockwise from the top of the forehead.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
CHIN = 152
NOSE_TIP = 1
FOREHEAD = 10


def inter_ocular(points) -> float:
    """Distance between the outer eye corners — the face's unit of length."""
    import numpy as np

    return float(np.linalg.norm(points[LEFT_EYE_OUTER, :2] - points[RIGHT_EYE_OUTER, :2]))
