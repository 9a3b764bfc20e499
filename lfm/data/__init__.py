"""Data: verified fetching (``fetch``), the one schema (``CategorySet``), loaders (``lfm.data.open.load``) and 2D
synthesis (``synthesize_views``); the open benchmark builds on them."""

from .fetch import (
    ChecksumError,
    DataError,
    DataUnavailableError,
    UnknownDataError,
    fetch,
    fetch_all,
    registry,
    sha256_of,
)
from .schema import CategorySet, knn_edges, skeleton_from_motion
from .views import Views, occlude, project, random_cameras, synthesize_views

__all__ = [
    "CategorySet",
    "Views",
    "knn_edges",
    "occlude",
    "project",
    "random_cameras",
    "skeleton_from_motion",
    "synthesize_views",
    "ChecksumError",
    "DataError",
    "DataUnavailableError",
    "UnknownDataError",
    "fetch",
    "fetch_all",
    "registry",
    "sha256_of",
]
