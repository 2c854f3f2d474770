"""Face stage: detection (BlazeFace), 468 landmarks (FaceMesh), video tracking, face rig."""

from mouthpiece.face.faces import detect_faces
from mouthpiece.face.landmarks import detect_landmarks
from mouthpiece.face.rig import build_rig
from mouthpiece.face.tracking import LandmarkTracker

__all__ = ["LandmarkTracker", "build_rig", "detect_faces", "detect_landmarks"]
