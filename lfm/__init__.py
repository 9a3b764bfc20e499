"""lfm: an open, runnable reproduction of 3D-LFM (Dabhi, Jeni, Lucey, CVPR 2024)."""
__version__ = "0.1.0"
