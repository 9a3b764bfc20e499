"""Named skeletons of common 2D keypoint formats, usable as ``lfm.lift(points2d, rig=NAME)`` / ``lfm lift --rig NAME``.

Each :class:`Skeleton` holds the keypoint names in the format's order and the edges (0-based index pairs) used as
the graph of the model's local attention branch. Give the keypoints in exactly this order, all of them (mark the
undetected ones with ``mask=False``).

=====================  ====  ==========================================================================
name                   N     format
=====================  ====  ==========================================================================
``coco17``             17    COCO keypoints (person), the output of most body detectors (mmpose, Detectron2,
                             YOLO-pose, ViTPose)
``h36m17``             17    Human3.6M 17-joint body (VideoPose3D / mmpose ``h36m`` order)
``mediapipe_hand21``   21    MediaPipe Hands landmarks (``HAND_CONNECTIONS``, palm included)
``openpose_hand21``    21    OpenPose hand: the same 21 points in the same order, OpenPose's tree (each finger
                             from the wrist)
``mediapipe_pose33``   33    MediaPipe Pose / BlazePose landmarks (``POSE_CONNECTIONS`` plus 4 joining edges)
``coco_wholebody133``  133   COCO-WholeBody: body 17, feet 6, face 68, left hand 21, right hand 21 (face
                             contours joined to the nose)
=====================  ====  ==========================================================================

The shipped checkpoint was not trained on any of these rigs (its rigs are listed by ``lfm.lifting.rigs()`` with
``trained_on``); on rigs it has not seen its accuracy is about that of the flat guess (README, Results).
"""

from __future__ import annotations

from dataclasses import dataclass

from .data.registered import H36M_EDGES, WHOLEBODY_EDGES

__all__ = ["Skeleton", "SKELETONS", "get", "names"]


@dataclass(frozen=True)
class Skeleton:
    """A named 2D keypoint format: ``keypoints`` (names, in order), ``edges`` (index pairs), ``source``."""

    name: str
    keypoints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    source: str

    @property
    def n(self) -> int:
        return len(self.keypoints)

    def as_rig(self) -> dict:
        """The entry of :func:`lfm.lifting.rigs` (same keys as a checkpoint's rigs, plus names and source)."""
        return {"keypoints": self.n, "edges": [list(e) for e in self.edges], "category": None,
                "trained_on": False, "edges_rule": f"named skeleton lfm.skeletons.{self.name}",
                "names": list(self.keypoints), "source": self.source}


_COCO17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
           "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
           "right_knee", "left_ankle", "right_ankle")
# the COCO annotation file's "skeleton" (1-based there), 0-based here: legs, hips, torso, arms, face to shoulders
_COCO17_EDGES = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                 (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))

_H36M17 = ("root", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot", "spine",
           "thorax", "neck_base", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
           "right_elbow", "right_wrist")

_FINGERS = ("thumb", "index_finger", "middle_finger", "ring_finger", "pinky")
_HAND21 = ("wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip") + tuple(
    f"{f}_{j}" for f in _FINGERS[1:] for j in ("mcp", "pip", "dip", "tip"))
_FINGER_CHAINS = tuple(tuple((1 + 4 * f + k, 2 + 4 * f + k) for k in range(3)) for f in range(5))
# MediaPipe HAND_CONNECTIONS: the palm (wrist-thumb, wrist-index, index-middle-ring-pinky knuckles, pinky-wrist)
# and the finger chains
_MP_HAND_EDGES = ((0, 1), (0, 5), (5, 9), (9, 13), (13, 17), (0, 17)) + tuple(e for c in _FINGER_CHAINS for e in c)
# OpenPose hand (HAND_PAIRS_RENDER): a tree, each finger hangs from the wrist
_OP_HAND_EDGES = tuple((0, 1 + 4 * f) for f in range(5)) + tuple(e for c in _FINGER_CHAINS for e in c)

_MP_POSE33 = ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
              "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
              "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
              "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
              "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
              "left_foot_index", "right_foot_index")
# MediaPipe POSE_CONNECTIONS (35 edges): it leaves the eyes/ears, the mouth and the body as three separate pieces
_MP_POSE_EDGES = ((0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13),
                  (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20),
                  (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
                  (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32))
# joining edges (ours): nose to the mouth corners, ears to shoulders (as COCO joins them), so the graph is connected
_MP_POSE_JOIN = ((0, 9), (0, 10), (7, 11), (8, 12))


# lfm.data.registered.WHOLEBODY_EDGES draws the 68 face points as 9 separate contours (jaw, brows, nose bridge,
# nose base, eyes, lips); these joining edges (ours, iBUG face indices + 23) tie them to the nose and the body
_F = 23
_WHOLEBODY_JOIN = ((0, _F + 30), (_F + 27, _F + 21), (_F + 27, _F + 22), (_F + 30, _F + 33), (_F + 27, _F + 39),
                   (_F + 27, _F + 42), (_F + 33, _F + 51), (_F + 51, _F + 62), (_F + 8, _F + 57))


def _wholebody_names() -> tuple[str, ...]:
    feet = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
    face = tuple(f"face_{i}" for i in range(68))
    mm_fingers = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")  # mmpose's names
    hands = tuple(f"{side}_hand_root" if k == 0 else f"{side}_{mm_fingers[(k - 1) // 4]}{(k - 1) % 4 + 1}"
                  for side in ("left", "right") for k in range(21))
    return _COCO17 + feet + face + hands


SKELETONS: dict[str, Skeleton] = {s.name: s for s in (
    Skeleton("coco17", _COCO17, _COCO17_EDGES,
             "COCO keypoint detection format (Lin et al., ECCV 2014; cocodataset.org/#format-data): 17 person "
             "keypoints and the annotation file's skeleton (19 edges)"),
    Skeleton("h36m17", _H36M17, tuple(H36M_EDGES),
             "Human3.6M 17 joints (Ionescu et al., TPAMI 2014) in the order of VideoPose3D / mmpose's h36m "
             "dataset; edges: the parent tree of lfm.data.registered.H36M_EDGES"),
    Skeleton("mediapipe_hand21", _HAND21, _MP_HAND_EDGES,
             "MediaPipe Hands (Zhang et al., 2020; google-ai-edge/mediapipe hand landmarks): 21 landmarks and "
             "HAND_CONNECTIONS"),
    Skeleton("openpose_hand21", _HAND21, _OP_HAND_EDGES,
             "OpenPose hand keypoints (Simon et al., CVPR 2017; CMU-Perceptual-Computing-Lab/openpose, "
             "output format doc): the 21 points of MediaPipe Hands in the same order; OpenPose's rendering tree"),
    Skeleton("mediapipe_pose33", _MP_POSE33, _MP_POSE_EDGES + _MP_POSE_JOIN,
             "MediaPipe Pose / BlazePose (Bazarevsky et al., 2020; google-ai-edge/mediapipe pose landmarks): 33 "
             "landmarks, POSE_CONNECTIONS plus nose-mouth and ear-shoulder edges that join its three pieces"),
    Skeleton("coco_wholebody133", _wholebody_names(), tuple(WHOLEBODY_EDGES) + _WHOLEBODY_JOIN,
             "COCO-WholeBody (Jin et al., ECCV 2020; jin-s13/COCO-WholeBody): body 0-16 (COCO), feet 17-22, face "
             "23-90 (68 iBUG points), left hand 91-111, right hand 112-132; edges lfm.data.registered."
             "WHOLEBODY_EDGES plus 9 edges that join the face contours to the nose and the body"),
)}


def names() -> list[str]:
    """The names of the named skeletons."""
    return list(SKELETONS)


def get(name: str) -> Skeleton:
    """The :class:`Skeleton` called ``name``; a ``KeyError`` that lists the known names otherwise."""
    try:
        return SKELETONS[name]
    except KeyError:
        raise KeyError(f"unknown skeleton {name!r}; known: {names()}") from None
