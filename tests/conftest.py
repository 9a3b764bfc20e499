"""Shared fixtures: seeded generators, random similarity transforms (scipy as the independent source), devices,
the open-data mirror (``needs_mirror``, ``offline_cache``).

Without the mirror the tests that read real files skip, unless ``CI`` is set: then the run stops at once with a
message naming the setting (a CI with a broken mirror path must not go green on skips).
"""

import os

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lfm import paths

HAVE_MIRROR = (paths.mirror_dir() / "MANIFEST.json").is_file()
needs_mirror = pytest.mark.skipif(not HAVE_MIRROR, reason=f"no open-data mirror at {paths.mirror_dir()}")


def pytest_sessionstart(session):
    if os.environ.get("CI") and not HAVE_MIRROR:
        pytest.exit(f"CI is set but the open-data mirror is missing: no MANIFEST.json in {paths.mirror_dir()}. "
                    "Set LFM_MIRROR to the folder that holds it (in this project: ../shared/data/open).", returncode=3)


@pytest.fixture
def offline_cache(tmp_path_factory, monkeypatch):
    """Read the mirror into a per-session cache, never the network."""
    monkeypatch.setenv("LFM_DATA", str(tmp_path_factory.getbasetemp() / "lfm-data"))
    monkeypatch.setenv("LFM_OFFLINE", "1")


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


def components(edges, n: int) -> int:
    """Number of connected components of the graph with ``n`` nodes and ``(E, 2)`` edges (union-find)."""
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in np.asarray(edges, dtype=np.int64).reshape(-1, 2).tolist():
        parent[find(a)] = find(b)
    return len({find(i) for i in range(n)})


def is_tree(edges, n: int) -> bool:
    """``n - 1`` distinct undirected edges that connect all ``n`` nodes."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return len(e) == n - 1 and len({tuple(sorted(x)) for x in e.tolist()}) == n - 1 and components(e, n) == 1
