"""Data: verified fetching (``fetch``), the one schema (``CategorySet``), the category table (``lfm.data.categories()``, ``lfm.data.load(name)``) and 2D
synthesis (``synthesize_views``); the open benchmark builds on them."""

from .fetch import (
    ChecksumError,
    DataError,
    DataUnavailableError,
    UnknownDataError,
    cached_arrays,
    fetch,
    fetch_all,
    registry,
    sha256_of,
)
from .catalog import categories, load, record, records
from .schema import CategorySet, knn_edges, skeleton_from_motion
from .views import Views, occlude, project, random_cameras, synthesize_views

__all__ = [
    "categories",
    "load",
    "record",
    "records",
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
    "cached_arrays",
    "fetch",
    "fetch_all",
    "registry",
    "sha256_of",
]
