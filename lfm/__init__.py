"""lfm: an open, runnable reproduction of 3D-LFM (Dabhi, Jeni, Lucey, CVPR 2024).

``lfm.lift(points2d, mask=None, edges=None, checkpoint=None, rig=None)`` lifts 2D keypoints (``lfm.lift_file(path)``
the poses of a SLEAP, DeepLabCut, COCO, NWB or .npz file) with the shipped
checkpoint (see :mod:`lfm.lifting`); the rest lives in the submodules (model, losses, geometry, data, train,
evaluate, ...).
"""
__version__ = "0.1.0"


def lift(points2d, mask=None, edges=None, checkpoint=None, **kwargs):
    """Lift 2D keypoints to 3D: see :func:`lfm.lifting.lift` (imported on first use, so ``import lfm`` stays light)."""
    from .lifting import lift as _lift

    return _lift(points2d, mask, edges, checkpoint, **kwargs)


def lift_file(path, **kwargs):
    """Lift the 2D poses of a pose file (SLEAP, DeepLabCut, COCO, NWB, .npz, ...): see :func:`lfm.lifting.lift_file`;
    returns ``(poses, lifted)``."""
    from .lifting import lift_file as _lift_file

    return _lift_file(path, **kwargs)
