"""Shared fixtures: seeded generators, random similarity transforms (scipy as the independent source), devices."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def random_similarity(rng, B, reflect=False):
    """B random proper rotations (scipy), optional reflection, scales in [0.5, 2], translations; numpy float64."""
    R = Rotation.random(B, random_state=rng.integers(1 << 31)).as_matrix()  # (B, 3, 3), column convention
    if reflect:
        R = R @ np.diag([1.0, 1.0, -1.0])
    s = rng.uniform(0.5, 2.0, size=B)
    t = rng.normal(size=(B, 3))
    return R, s, t


def apply_similarity(x, R, s, t):
    """Row-vector convention y = s * x @ R + t (numpy)."""
    return s[:, None, None] * np.einsum("bni,bij->bnj", x, R) + t[:, None, :]
