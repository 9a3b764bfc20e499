"""lfm.data.fetch for real: a local HTTP server on 127.0.0.1 serving a copy of mirror files (good, 404, cut short,
corrupted), the offline mirror, the cache, and each named error."""

import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from lfm import paths
from lfm.data import ChecksumError, DataUnavailableError, UnknownDataError, fetch, fetch_all, registry
from lfm.data.fetch import sha256_of

MIRROR = paths.mirror_dir()
SMALL = "mouse_dannce_label3d/mouse22_skeleton.mat"  # 664 bytes
BIG = "acinoset_cheetah/dlc_2d/LilyRun1_CAM1.csv"  # ~300 kB
needs_mirror = pytest.mark.skipif(not (MIRROR / "MANIFEST.json").is_file(), reason=f"no open-data mirror at {MIRROR}")


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    mode: dict

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        f = self.root / name
        behaviour = self.mode.get(name, "ok")
        if behaviour == "404" or not f.is_file():
            self.send_error(404, "Not Found")
            return
        data = f.read_bytes()
        if behaviour == "corrupt":
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if behaviour == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server over copies of two mirror files; LFM_BASE_URL points at it. Yields (url, mode):
    set mode[name] to "404", "truncate" or "corrupt" to change how that file is served."""
    root = tmp_path / "served"
    for n in (SMALL, BIG):
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MIRROR / n, root / n)
    mode: dict = {}
    handler = type("H", (_Handler,), {"root": root, "mode": mode})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("LFM_BASE_URL", url)
    yield url, mode
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    c = tmp_path / "cache"
    monkeypatch.setenv("LFM_DATA", str(c))
    monkeypatch.setenv("LFM_MIRROR", str(tmp_path / "no-mirror-here"))
    monkeypatch.delenv("LFM_OFFLINE", raising=False)
    monkeypatch.setenv("LFM_TIMEOUT", "10")
    return c


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@needs_mirror
def test_download_good_file(server, cache, monkeypatch):
    url, _ = server
    for name in (SMALL, BIG):
        path = fetch(name, progress=False)
        assert path == cache / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == registry()[name]["sha256"]
    assert _files(cache) == sorted([SMALL, BIG])  # no .part files left behind
    # a second call uses the cache without asking the server
    monkeypatch.setenv("LFM_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    assert fetch(SMALL, progress=False) == cache / SMALL


@needs_mirror
def test_download_404_reports_each_place(server, cache, monkeypatch):
    url, mode = server
    mode[SMALL] = "404"
    with pytest.raises(DataUnavailableError) as e:
        fetch(SMALL, progress=False)
    msg = str(e.value)
    assert "HTTP 404" in msg and f"{url}/{SMALL}" in msg and "no-mirror-here" in msg and "LFM_MIRROR" in msg
    assert _files(cache) == []


@needs_mirror
def test_download_cut_short_leaves_no_partial_file(server, cache, monkeypatch):
    url, mode = server
    mode[BIG] = "truncate"
    with pytest.raises(DataUnavailableError, match="cut short") as e:
        fetch(BIG, progress=False)
    assert "partial file was deleted" in str(e.value)
    assert _files(cache) == []


@needs_mirror
def test_cut_short_download_falls_back_to_the_mirror(server, cache, monkeypatch):
    url, mode = server
    monkeypatch.setenv("LFM_MIRROR", str(MIRROR))
    mode[BIG] = "truncate"
    path = fetch(BIG, progress=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == registry()[BIG]["sha256"]


@needs_mirror
def test_checksum_mismatch_names_file_expected_actual(server, cache, monkeypatch):
    url, mode = server
    mode[SMALL] = "corrupt"
    with pytest.raises(ChecksumError) as e:
        fetch(SMALL, progress=False)
    msg = str(e.value)
    assert SMALL in msg and registry()[SMALL]["sha256"] in msg and "expected" in msg and "got" in msg
    assert _files(cache) == []


@needs_mirror
def test_corrupt_mirror_copy_is_named(cache, tmp_path, monkeypatch):
    bad_mirror = tmp_path / "bad-mirror"
    (bad_mirror / SMALL).parent.mkdir(parents=True)
    (bad_mirror / SMALL).write_bytes(b"x" * registry()[SMALL]["bytes"])
    monkeypatch.setenv("LFM_MIRROR", str(bad_mirror))
    monkeypatch.setenv("LFM_OFFLINE", "1")
    with pytest.raises(ChecksumError, match="delete or replace it") as e:
        fetch(SMALL, progress=False)
    assert str(bad_mirror / SMALL) in str(e.value)


@needs_mirror
def test_damaged_cache_copy_is_fetched_again(cache, monkeypatch):
    monkeypatch.setenv("LFM_MIRROR", str(MIRROR))
    monkeypatch.setenv("LFM_OFFLINE", "1")
    (cache / SMALL).parent.mkdir(parents=True)
    (cache / SMALL).write_bytes(b"damaged")
    path = fetch(SMALL, progress=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == registry()[SMALL]["sha256"]


def test_no_network_and_no_mirror(cache, monkeypatch):
    monkeypatch.setenv("LFM_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as e:
        fetch(SMALL, progress=False)
    assert "LFM_OFFLINE" in str(e.value) and "no-mirror-here" in str(e.value)


def test_mirror_only_entry_says_so(cache):
    no_url = [n for n, e in registry().items() if not e["url"]]
    assert no_url, "the registry has entries without a URL (derived files)"
    with pytest.raises(DataUnavailableError, match="no download URL"):
        fetch(no_url[0], progress=False)


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownDataError) as e:
        fetch("nrsfm_benchmark/yoga_rearanged.mat")
    msg = str(e.value)
    assert "nrsfm_benchmark/yoga_rearranged.mat" in msg  # the close match
    assert "dog_mocap_ai4animation" in msg and "registry()" in msg


@needs_mirror
def test_registry_matches_the_mirror_manifest_and_whole_mirror_verifies(cache, monkeypatch):
    import json

    manifest = {e["path"]: e for e in json.loads((MIRROR / "MANIFEST.json").read_text())}
    reg = registry()
    assert set(reg) == set(manifest)
    assert all(reg[n]["sha256"] == manifest[n]["sha256"] and reg[n]["url"] == manifest[n]["url"] for n in reg)
    assert all(reg[n]["bytes"] == manifest[n]["bytes"] and reg[n]["licence"] == manifest[n]["license"] for n in reg)
    monkeypatch.setenv("LFM_MIRROR", str(MIRROR))
    monkeypatch.setenv("LFM_OFFLINE", "1")
    missing = {}
    got = fetch_all(progress=False, unavailable=missing)
    # every file the manifest lists is in the mirror and verifies (the bird model that was missing is back)
    assert missing == {}, sorted(missing)
    assert len(got) == len(reg) and all(p.is_file() for p in got.values())
    assert all(sha256_of(p) == reg[n]["sha256"] for n, p in got.items() if n.startswith(("keypointnet_objects/", "pig_model_mammal/", "bird_aves/models/")))


@needs_mirror
def test_truncated_mirror_file_is_named_as_short_on_disk(cache, tmp_path, monkeypatch):
    """A mirror copy cut short on disk is not a network problem: name the path, both sizes and the fix."""
    short_mirror = tmp_path / "short-mirror"
    (short_mirror / BIG).parent.mkdir(parents=True)
    data = (MIRROR / BIG).read_bytes()
    (short_mirror / BIG).write_bytes(data[: len(data) // 3])
    monkeypatch.setenv("LFM_MIRROR", str(short_mirror))
    monkeypatch.setenv("LFM_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as e:
        fetch(BIG, progress=False)
    msg = str(e.value)
    assert str(short_mirror / BIG) in msg and f"{len(data) // 3:,} bytes on disk" in msg
    assert f"expected {registry()[BIG]['bytes']:,}" in msg and "truncated" in msg
    assert "copy that file into the mirror again" in msg and "LFM_MIRROR" in msg
    assert "connect to the internet" not in msg and "transfer was cut short" not in msg
    assert _files(cache) == [] and (short_mirror / BIG).stat().st_size == len(data) // 3  # nothing written or lost
