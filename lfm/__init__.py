"""lfm: an open, runnable reproduction of 3D-LFM (Dabhi, Jeni, Lucey, CVPR 2024).

``lfm.lift(points2d, mask=None, edges=None, checkpoint=None, rig=None)`` lifts 2D keypoints with the shipped
checkpoint (see :mod:`lfm.lifting`); the rest lives in the submodules (model, losses, geometry, data, train,
evaluate, ...).
"""
__version__ = "0.1.0"


def lift(points2d, mask=None, edges=None, checkpoint=None, **kwargs):
    """Lift 2D keypoints to 3D: see :func:`lfm.lifting.lift` (imported on first use, so ``import lfm`` stays light)."""
    from .lifting import lift as _lift

    return _lift(points2d, mask, edges, checkpoint, **kwargs)
