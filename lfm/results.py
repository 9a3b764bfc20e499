"""Result files with provenance, written atomically (a crash never leaves a half-written file under the final name).

Named `results` (not `io`, which would shadow the standard library module inside the package)."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import __version__, paths

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_json", "read_json", "provenance"]


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _plain(obj: Any) -> Any:
    """JSON-safe plain types: no NaN tokens (-> null), tensors and numpy scalars -> Python numbers."""
    if hasattr(obj, "tolist"):
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomic, sorted-key, indented JSON; non-finite floats become null (strict JSON)."""
    return atomic_write_text(path, json.dumps(_plain(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist; run the notebook or script that writes it first.") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it and rerun its producer.") from None


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=paths.root(), capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.root(), capture_output=True,
            text=True, timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _attention(device: str) -> str:
    """Which attention the model runs on ``device`` (lfm.model.attention_path; the paths agree to float rounding,
    not bit for bit)."""
    import torch

    from . import native
    from .model import attention_path

    path = attention_path(torch.device(device))
    return f"{path}, bf16 dot products for bf16 inputs" if path == "native" and native.bf16_dot() else path


def provenance(device: str | None = None) -> dict:
    """Versions, device, git commit and time: the header of every result file."""
    import numpy
    import torch

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    info = {
        "lfm": __version__,
        "git": _git_sha(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": dev,
        "cpu_threads": torch.get_num_threads(),
        "attention": _attention(dev),
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if dev.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info
