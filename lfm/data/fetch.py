"""Download with checksums, an offline mirror, and atomic writes.

Every open-data file is named by its path in the mirror (``"nrsfm_benchmark/yoga_rearranged.mat"``); the
registry (``registry.json``, facts from the mirror's MANIFEST.json) gives its upstream URL, sha256, size and
licence. :func:`fetch` puts a verified copy in the data cache and returns its path:

1. a cached copy whose sha256 matches is used as is (a mismatching one is deleted and fetched again);
2. otherwise the upstream URL is tried (or ``LFM_BASE_URL/<name>`` when that setting is given);
3. then the offline mirror (``LFM_MIRROR``, default ``../shared/data/open`` beside the repository). A mirror file
   whose size on disk differs from the registry's is reported as such (path, expected and actual bytes: re-copy
   it), before any copy is made.

A file is written under a temporary name beside its destination and renamed into place only after its size
and sha256 check out, so no half file ever exists under the final name. Settings (environment variables, read
at call time): ``LFM_DATA`` (cache), ``LFM_MIRROR``, ``LFM_BASE_URL``, ``LFM_OFFLINE=1`` (skip the network),
``LFM_TIMEOUT`` (seconds, default 20).
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import io
import json
import os
import tempfile
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

from .. import paths

__all__ = [
    "registry",
    "fetch",
    "fetch_all",
    "cached_arrays",
    "licence",
    "sha256_of",
    "DataError",
    "ChecksumError",
    "DataUnavailableError",
    "UnknownDataError",
]

_CHUNK = 1 << 20


class DataError(Exception):
    """Base class of the data errors; each message names the file and says what to do."""


class UnknownDataError(DataError, KeyError):
    def __str__(self):  # KeyError would print the message with quotes
        return str(self.args[0])


class ChecksumError(DataError, ValueError):
    pass


class DataUnavailableError(DataError, FileNotFoundError):
    pass


@lru_cache(maxsize=None)
def _registry() -> dict:
    return json.loads((Path(__file__).with_name("registry.json")).read_text())["files"]


def registry() -> dict[str, dict]:
    """``{name: {"sha256", "bytes", "url", "licence"}}`` for every known open-data file."""
    return dict(_registry())


def _entry(name: str) -> dict:
    reg = _registry()
    if name not in reg:
        folders = sorted({n.split("/")[0] for n in reg})
        close = difflib.get_close_matches(name, list(reg), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownDataError(
            f"unknown data file {name!r}.{hint} Known folders: {', '.join(folders)}; "
            "lfm.data.registry() lists every file name."
        )
    return reg[name]


def licence(name: str) -> str:
    """The licence of one registered file, as its upstream states it."""
    return _entry(name)["licence"]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not enabled or total < 2 * _CHUNK,
                leave=False)


def _copy_verified(src, dest: Path, entry: dict, name: str, where: str, progress: bool) -> None:
    """Stream ``src`` (a binary file object) into a temp file beside ``dest``; check size and sha256; rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    h, n = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, _progress(entry["bytes"], name, progress) as bar:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                out.write(chunk)
                h.update(chunk)
                n += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if n != entry["bytes"]:
            raise _Incomplete(f"got {n:,} of {entry['bytes']:,} bytes from {where} (the transfer was cut short)")
        if h.hexdigest() != entry["sha256"]:
            raise _BadHash(h.hexdigest())
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


class _Incomplete(Exception):
    pass


class _BadHash(Exception):
    pass


def fetch(name: str, *, progress: bool = True) -> Path:
    """Return the path of a verified local copy of the open-data file ``name`` (see the module docstring)."""
    entry = _entry(name)
    dest = paths.data_dir() / name
    if dest.is_file():
        if sha256_of(dest) == entry["sha256"]:
            return dest
        dest.unlink()  # a stale or damaged cache copy: fetch again
    tried: list[str] = []
    bad_hash: list[tuple[str, str]] = []
    base = os.environ.get("LFM_BASE_URL", "").rstrip("/")
    url = f"{base}/{name}" if base else entry["url"]
    if os.environ.get("LFM_OFFLINE", "") not in ("", "0"):
        tried.append("network: skipped (LFM_OFFLINE is set)")
    elif not url:
        tried.append("network: this file has no download URL (it is derived upstream data; see its SOURCE.md), "
                     "only the offline mirror provides it")
    else:
        timeout = float(os.environ.get("LFM_TIMEOUT", "20"))
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                _copy_verified(resp, dest, entry, name, url, progress)
            return dest
        except urllib.error.HTTPError as e:
            tried.append(f"{url}: HTTP {e.code} {e.reason}")
        except (urllib.error.URLError, OSError) as e:
            tried.append(f"{url}: {getattr(e, 'reason', e)}")
        except (_Incomplete, http.client.HTTPException) as e:
            what = f"the transfer was cut short ({type(e).__name__})" if isinstance(e, http.client.HTTPException) else e
            tried.append(f"{url}: {what}; the partial file was deleted")
        except _BadHash as e:
            tried.append(f"{url}: sha256 {e.args[0]}, expected {entry['sha256']} (the upstream file changed)")
            bad_hash.append((url, e.args[0]))
    mirror = paths.mirror_dir() / name
    if mirror.is_file() and mirror.stat().st_size != entry["bytes"]:
        size = mirror.stat().st_size
        places = "\n  ".join(tried)
        raise DataUnavailableError(
            f"{name}: the mirror copy {mirror} is {size:,} bytes on disk, expected {entry['bytes']:,} "
            f"({'truncated: the copy into the mirror was cut short' if size < entry['bytes'] else 'too long'}). "
            f"Nothing was copied into {dest.parent}. Fix: copy that file into the mirror again from the original "
            f"(or from {entry['url'] or 'its SOURCE.md'}), or set LFM_MIRROR to a complete copy of the open data. "
            f"Places tried before the mirror:\n  {places}"
        )
    if mirror.is_file():
        try:
            with open(mirror, "rb") as f:
                _copy_verified(f, dest, entry, name, str(mirror), progress)
            return dest
        except _Incomplete as e:
            tried.append(f"mirror {mirror}: {e}")
        except _BadHash as e:
            tried.append(f"mirror {mirror}: sha256 {e.args[0]}, expected {entry['sha256']}")
            bad_hash.append((str(mirror), e.args[0]))
    else:
        tried.append(f"mirror {mirror}: not found (set LFM_MIRROR to the folder that holds the open data)")
    places = "\n  ".join(tried)
    if bad_hash:
        src, actual = bad_hash[-1]
        raise ChecksumError(
            f"{name}: sha256 mismatch: expected {entry['sha256']}, got {actual} from {src}. No copy was kept in "
            f"{dest.parent}. If {src} is a local file, delete or replace it with the original; if the upstream file "
            f"changed, report it. Places tried:\n  {places}"
        )
    raise DataUnavailableError(
        f"{name} could not be fetched; places tried:\n  {places}\n"
        "Fix: connect to the internet, or set LFM_MIRROR to a copy of the open data (README, Data)."
    )


def fetch_all(prefix: str = "", *, progress: bool = True, unavailable: dict | None = None) -> dict[str, Path]:
    """Fetch every registry file whose name starts with ``prefix`` (e.g. a folder name).

    A file that can be had from nowhere (no network, not in the mirror) raises :class:`DataUnavailableError`, unless
    a dict is passed as ``unavailable``: then it collects ``{name: reason}`` and the others are still fetched.
    A checksum mismatch always raises."""
    names = [n for n in sorted(_registry()) if n.startswith(prefix)]
    if not names:
        _entry(prefix)  # raises with the known names
    out = {}
    for n in names:
        try:
            out[n] = fetch(n, progress=progress)
        except DataUnavailableError as e:
            if unavailable is None:
                raise
            unavailable[n] = str(e)
    return out


def cached_arrays(key: str, sources, build, *, version: int = 1) -> dict:
    """Arrays parsed from mirror files, parsed once: ``build()`` returns ``{name: np.ndarray}`` (no objects);
    the result is stored as ``<LFM_DATA>/cache/<key>-<hash>.npz``, the hash over the sha256 of every source in
    ``sources`` (registry names) and ``version`` (bump it when the parser changes). Written atomically."""
    import numpy as np

    from ..results import atomic_write_bytes

    h = hashlib.sha256(f"{key}/{version}".encode())
    for name in sorted(sources):
        h.update(_entry(name)["sha256"].encode())
    path = paths.data_dir() / "cache" / f"{key}-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
    arrays = build()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return arrays
