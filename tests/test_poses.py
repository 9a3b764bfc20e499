"""Pose files for lfm lift: files written by the tools' own writers (sleap-io writes SLEAP, analysis HDF5, NWB, COCO
and DeepLabCut; ezc3d writes C3D) and real published files from the mirror read back to the numbers written;
every bad input a one-line error naming the file and the fix, nothing written; the output's checks; fine-tuning."""

import csv
import json
import os
import warnings

import numpy as np
import pytest

from lfm import cli, lifting
from lfm.poses import PoseFileError, read_poses

from .conftest import needs_mirror

sio = pytest.importorskip("sleap_io")
needs_checkpoint = pytest.mark.skipif(not lifting.DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint")
NAMES = ["snout", "neck", "back", "hip", "tail"]


def _run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A 2-animal, 6-frame sequence with scores, saved by sleap-io in five formats; the arrays it was made of."""
    d = tmp_path_factory.mktemp("poses")
    rng = np.random.default_rng(0)
    sk = sio.Skeleton(nodes=list(NAMES), edges=[("snout", "neck"), ("neck", "back"), ("back", "hip"), ("hip", "tail")],
                       name="mouse")
    video = sio.Video(filename="session.mp4", open_backend=False)
    tracks = [sio.Track("mouse1"), sio.Track("mouse2")]
    xy = rng.normal(size=(6, 2, 5, 2)) * 40 + 300
    xy[2, 1, 4] = np.nan  # one keypoint not predicted
    score = rng.uniform(0.2, 1.0, size=(6, 2, 5))
    frames = []
    for f in range(6):
        insts = [sio.PredictedInstance.from_numpy(xy[f, i], skeleton=sk, point_scores=score[f, i], score=0.9,
                                                  track=tracks[i]) for i in range(2)]
        frames.append(sio.LabeledFrame(video=video, frame_idx=f, instances=insts))
    labels = sio.Labels(labeled_frames=frames, videos=[video], skeletons=[sk], tracks=tracks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sio.save_slp(labels, str(d / "mice.slp"))
        sio.save_analysis_h5(labels, str(d / "mice.analysis.h5"))
        sio.save_nwb(labels, str(d / "mice.nwb"))
        sio.save_coco(labels, str(d / "mice.json"))
        sio.save_csv(labels, str(d / "mice_dlc.csv"), format="dlc", include_score=True)
    return d, xy, score


@pytest.mark.parametrize("name,fmt,has_score,tracks", [
    ("mice.slp", "slp", True, True), ("mice.analysis.h5", "analysis_h5", True, True), ("mice.nwb", "nwb", True, False),
    ("mice.json", "coco", False, False), ("mice_dlc.csv", "dlc", False, True)])  # sleap-io leaves DLC likelihoods empty
def test_files_of_the_tools_writers_read_back(written, name, fmt, has_score, tracks):
    d, xy, score = written
    p = read_poses(d / name)
    assert p.format == fmt and p.names == NAMES
    assert p.points2d.shape == (12, 5, 2)  # 6 frames x 2 instances, frame order kept
    assert p.frame.tolist() == [f for f in range(6) for _ in range(2)] and p.instance.tolist() == [0, 1] * 6
    np.testing.assert_allclose(p.points2d, xy.reshape(12, 5, 2), rtol=1e-5)  # NaN where it was NaN
    if has_score:
        ok = np.isfinite(xy.reshape(12, 5, 2)).all(-1)
        np.testing.assert_allclose(p.confidence[ok], score.reshape(12, 5)[ok], rtol=1e-5)
    if tracks:
        assert p.track.tolist() == ["mouse1", "mouse2"] * 6
    if fmt != "dlc":  # DeepLabCut keeps its skeleton in the project's config.yaml, not in the table
        assert p.edges.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]


def test_dlc_skeleton_comes_from_the_project_config(written, tmp_path):
    d, _, _ = written
    (tmp_path / "videos").mkdir()
    dst = tmp_path / "videos" / "mice_dlc.csv"
    dst.write_bytes((d / "mice_dlc.csv").read_bytes())
    (tmp_path / "config.yaml").write_text("bodyparts: [snout, neck, back, hip, tail]\n"
                                          "skeleton:\n- [snout, neck]\n- [hip, tail]\n")
    p = read_poses(dst)
    assert p.edges.tolist() == [[0, 1], [3, 4]]
    (tmp_path / "config.yaml").write_text("bodyparts: [nose]\nskeleton:\n- [nose, neck]\n")
    with pytest.raises(PoseFileError, match=r"names bodyparts \['nose'\] that the file does not have"):
        read_poses(dst)


@needs_mirror
@pytest.mark.usefixtures("offline_cache")
def test_real_sleap_analysis_file_matches_its_hdf5_arrays():
    """A real SLEAP analysis file (sleap-anipose's minimal session, GPL-3.0): the poses equal its `tracks` array read
    with h5py (SLEAP stores it as (tracks, 2, nodes, frames))."""
    import h5py

    from lfm.data.fetch import fetch

    path = fetch("mouse_sleap_anipose_minimal/minimal_top_proofread.analysis.h5", progress=False)
    p = read_poses(path)
    with h5py.File(path, "r") as f:
        tr = f["tracks"][:]  # (T, 2, N, F)
        names = [n.decode() for n in f["node_names"][:]]
    F = tr.shape[-1]
    want = np.transpose(tr[0], (2, 1, 0))  # (F, N, 2)
    have = np.isfinite(want).all(-1).any(-1)
    assert p.names == names and p.format == "analysis_h5"
    np.testing.assert_allclose(p.points2d, want[have], rtol=1e-6)
    assert p.frame.tolist() == np.flatnonzero(have).tolist() and F == 120


@needs_mirror
@pytest.mark.usefixtures("offline_cache")
def test_real_deeplabcut_csv_matches_a_plain_csv_parse():
    """A real DeepLabCut predictions CSV (AcinoSet cheetah): coordinates and likelihoods equal the numbers of the
    file read with the csv module; 0.5 hides exactly the keypoints below that likelihood."""
    from lfm.data.fetch import fetch

    path = fetch("acinoset_cheetah/dlc_2d/JulesFlick2_CAM1.csv", progress=False)
    with open(path) as f:
        rows = list(csv.reader(f))
    body = np.array([[float(v) if v else np.nan for v in r[1:]] for r in rows[3:]])
    triples = body.reshape(len(body), -1, 3)
    p = read_poses(path)
    assert p.format == "dlc" and p.names == list(dict.fromkeys(rows[1][1:]))
    np.testing.assert_allclose(p.points2d, triples[..., :2], rtol=1e-6)
    np.testing.assert_allclose(p.confidence, triples[..., 2], rtol=1e-6)
    assert p.frame.tolist() == [int(r[0]) for r in rows[3:]]
    assert (p.visible(0.5) == (triples[..., 2] >= 0.5)).all()


@needs_checkpoint
@pytest.mark.parametrize("name", ["mice.slp", "mice.json", "mice_dlc.csv", "mice.nwb"])
def test_cli_lifts_each_format_to_csv_json_npz_and_html(written, tmp_path, capsys, name):
    d, xy, _ = written
    rc, out, err = _run(capsys, "lift", d / name, "-o", tmp_path / "o.csv", "--html", tmp_path / "o.html",
                        "--min-confidence", "0", "--no-progress")
    assert rc == 0, err
    with open(tmp_path / "o.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 * 2 * 5 and rows[0]["name"] == "snout" and rows[7]["instance"] == "1"
    assert [int(r["frame"]) for r in rows[::10]] == list(range(6))
    np.testing.assert_allclose(float(rows[3]["x2d"]), xy[0, 0, 3, 0], rtol=1e-5)
    page = (tmp_path / "o.html").read_text()
    assert "<script src=" not in page and "Plotly.newPlot" in page
    assert len(page) > 1_000_000  # plotly.js embedded: the page works offline
    rc, _, err = _run(capsys, "lift", d / name, "-o", tmp_path / "o.json", "--min-confidence", "0", "--no-progress")
    data = json.loads((tmp_path / "o.json").read_text())
    assert rc == 0 and len(data["rows"]) == 60
    assert data["meta"]["graph"] == ("fallback:2d-knn(k=3)" if name.endswith(".csv") else "edges")
    rc, _, err = _run(capsys, "lift", d / name, "-o", tmp_path / "o.npz", "--no-progress")
    with np.load(tmp_path / "o.npz") as z:
        assert z["camera"].shape == (12, 5, 3) and z["frame"].tolist() == [f for f in range(6) for _ in range(2)]
        R = z["rotation"][z["mask"].any(1)]
        np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-4)  # y down: still proper rotations
        assert z["axes"].tolist() == [1, -1, 1]
        cam = (z["scale"][:, None, None] * np.einsum("bnk,bkj->bnj", z["canonical"], z["rotation"])
               + z["translation"][:, None]) * z["axes"]
        m = z["mask"]
        np.testing.assert_allclose(cam[m], z["camera"][m], atol=1e-3)


# ---- bad input: one line naming the file and the fix, nothing written ------------------------------------------

def _bad_files(d, written_dir):
    (d / "notes.txt").write_text("x,y\n1,2\n")
    (d / "fake.slp").write_text("not a sleap file\n")
    (d / "plain.csv").write_text("x,y\n1,2\n3,4\n")
    (d / "list.json").write_text(json.dumps({"frames": [1, 2]}))
    (d / "text.h5").write_text("hello")
    coco = json.loads((written_dir / "mice.json").read_text())
    none = json.loads(json.dumps(coco))
    none["categories"][0]["keypoints"] = []
    (d / "nokp.json").write_text(json.dumps(none))
    mixed = json.loads(json.dumps(coco))
    mixed["categories"].append({"id": 2, "name": "fly", "keypoints": ["a", "b", "c"], "skeleton": []})
    mixed["annotations"].append({"id": 999, "image_id": 1, "category_id": 2, "keypoints": [1, 2, 2] * 3})
    (d / "mixed.json").write_text(json.dumps(mixed))
    badsk = json.loads(json.dumps(coco))
    badsk["categories"][0]["skeleton"] = [[1, 9]]
    (d / "badskel.json").write_text(json.dumps(badsk))
    lines = (written_dir / "mice_dlc.csv").read_text().splitlines()
    (d / "empty_dlc.csv").write_text("\n".join(lines[:4]) + "\n")
    empty = sio.Labels(skeletons=[sio.Skeleton(nodes=list(NAMES))])
    sio.save_slp(empty, str(d / "empty.slp"))
    return {
        "notes.txt": ["unknown pose file extension '.txt'", "--format"],
        "fake.slp": ["could not be read as slp", "--format"],
        "plain.csv": ["neither a DeepLabCut table", "npz"],
        "list.json": ["not a COCO keypoint file", "annotations"],
        "text.h5": ["is not an HDF5 file", "Export Analysis HDF5"],
        "nokp.json": ["has no category with 'keypoints'", "keypoint file"],
        "mixed.json": ["mixes keypoint sets", "one category at a time"],
        "badskel.json": ["skeleton joins keypoints outside 1..5", "correct the category's 'skeleton'"],
        "empty_dlc.csv": ["holds no poses", "run the pose estimator"],
        "empty.slp": ["holds no poses", "run the pose estimator"],
    }


@needs_checkpoint
def test_bad_pose_files_are_one_line_and_write_nothing(written, tmp_path, capsys):
    d, _, _ = written
    cases = _bad_files(tmp_path, d)
    (tmp_path / "keep.csv").write_text("my earlier output\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for name, wanted in cases.items():
        for out in ("new.csv", "keep.csv"):
            rc, _, err = _run(capsys, "lift", tmp_path / name, "-o", tmp_path / out, "--force", "--no-progress")
            line = _one_line(err)
            assert rc == 1 and str(tmp_path / name) in line, line
            for w in wanted:
                assert w in line, (name, line)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written, nothing half replaced


@needs_checkpoint
def test_names_that_do_not_match_the_rig(written, tmp_path, capsys):
    d, _, _ = written
    rc, _, err = _run(capsys, "lift", d / "mice.slp", "-o", tmp_path / "o.npz", "--rig", "coco17")
    line = _one_line(err)
    assert "rig 'coco17' has 17 keypoints but the file has 5" in line and "drop --rig" in line
    sk = sio.Skeleton(nodes=list(lifting.skeletons.get("coco17").keypoints))
    sk.nodes[1].name, sk.nodes[2].name = "right_eye", "left_eye"  # swapped order
    pts = np.random.default_rng(1).normal(size=(17, 2)) * 20 + 100
    v = sio.Video(filename="p.mp4", open_backend=False)
    lab = sio.Labels(labeled_frames=[sio.LabeledFrame(video=v, frame_idx=0, instances=[
        sio.Instance.from_numpy(pts, skeleton=sk)])], videos=[v], skeletons=[sk])
    sio.save_slp(lab, str(tmp_path / "person.slp"))
    rc, _, err = _run(capsys, "lift", tmp_path / "person.slp", "-o", tmp_path / "o.npz", "--rig", "coco17")
    line = _one_line(err)
    assert "keypoint 1 is 'right_eye', the rig's is 'left_eye'" in line and "rig's order" in line
    assert not (tmp_path / "o.npz").exists()


# ---- the output path --------------------------------------------------------------------------------------------

@needs_checkpoint
def test_output_paths_are_checked_before_any_work(written, tmp_path, capsys):
    d, _, _ = written
    src = d / "mice.slp"
    cases = {
        tmp_path / "missing" / "o.npz": ["the folder", "does not exist", "mkdir -p"],
        tmp_path: ["is a folder", "give a file name"],
        "/proc/lfm_out.npz": ["cannot write into /proc", "a folder of yours"],
        "/sys/lfm_out.npz": ["cannot write into /sys", "a folder of yours"],
        tmp_path / "o.txt": ["unknown output extension '.txt'", ".npz", ".csv", ".json"],
    }
    for dst, wanted in cases.items():
        rc, _, err = _run(capsys, "lift", src, "-o", dst)
        line = _one_line(err)
        assert rc == 1 and str(dst) in line and ".part" not in line, line
        for w in wanted:
            assert w in line, line
    assert not (tmp_path / "missing").exists()
    out = tmp_path / "o.npz"
    out.write_bytes(b"earlier")
    rc, _, err = _run(capsys, "lift", src, "-o", out)
    assert rc == 1 and "exists; pass --force" in _one_line(err) and out.read_bytes() == b"earlier"
    os.chmod(out, 0o444)
    rc, _, err = _run(capsys, "lift", src, "-o", out, "--force")
    assert rc == 1 and "is read-only" in _one_line(err) and "chmod u+w" in err and out.read_bytes() == b"earlier"
    os.chmod(out, 0o644)
    rc, _, err = _run(capsys, "lift", src, "-o", out, "--force", "--no-progress")
    assert rc == 0 and out.read_bytes()[:2] == b"PK"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.npz"]  # no temporary file left


# ---- smoothing --------------------------------------------------------------------------------------------------

def test_smoothing_is_a_gaussian_along_each_track():
    rng = np.random.default_rng(0)
    T, N = 200, 4
    truth = np.cumsum(rng.normal(size=(T, 1, 3)) * 0.05, 0) + np.zeros((1, N, 3))
    noisy = truth + rng.normal(size=truth.shape)
    mask = np.ones((T, N), bool)
    frame = np.arange(T)
    sm = lifting.smooth_camera(noisy, mask, frame, np.zeros(T), sigma=3.0)
    assert np.abs(sm - truth).mean() < 0.5 * np.abs(noisy - truth).mean()
    const = np.ones((T, N, 3))
    np.testing.assert_allclose(lifting.smooth_camera(const, mask, frame, np.zeros(T), 2.0), const)
    # two tracks never mix, a hidden keypoint stays 0 and is not averaged in
    two = np.concatenate([np.zeros((T, N, 3)), np.ones((T, N, 3))])
    g = np.repeat([0, 1], T)
    m2 = np.ones((2 * T, N), bool)
    m2[5, 0] = False
    out = lifting.smooth_camera(two, m2, np.concatenate([frame, frame]), g, 2.0)
    assert (out[:T] == 0).all() and np.allclose(out[T:], 1) and (out[5, 0] == 0).all()
    # frames further apart than 3 sigma are not averaged
    far = lifting.smooth_camera(np.array([[[0.0] * 3], [[1.0] * 3]]), np.ones((2, 1), bool), np.array([0, 100]),
                                np.zeros(2), 2.0)
    np.testing.assert_allclose(far[:, 0, 0], [0, 1])


# ---- fine-tuning ------------------------------------------------------------------------------------------------

@needs_mirror
@needs_checkpoint
@pytest.mark.usefixtures("offline_cache")
def test_finetune_lowers_the_held_out_error_of_a_new_body(tmp_path, capsys):
    """A procedural body the model never saw, as the user's .npz: a few fine-tuning steps lower its held-out
    error; model.pt lifts with the new rig; a C3D written by ezc3d is read back to the same points."""
    import torch

    from lfm.data.procedural import generate
    from lfm.finetune import read_motion

    torch.set_num_threads(1)
    body = generate(1, 400, seed=123)[0]
    seq = np.repeat(np.arange(8), 50)
    np.savez(tmp_path / "toy.npz", points3d=body.points3d, edges=body.edges, sequence=seq)
    rc, out, err = _run(capsys, "finetune", tmp_path / "toy.npz", "-o", tmp_path / "run", "--mix", "dog",
                        "--max-epochs", "3", "--epoch-steps", "25", "--threads", "1", "--no-progress")
    assert rc == 0, err
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    assert rep["split"]["test"] == 100 and rep["your_share_of_batches"] == 0.5
    assert rep["after"]["yours"]["ratio_det"] < rep["before"]["yours"]["ratio_det"], rep["after"]["yours"]
    assert "yours_toy" in lifting.rigs(tmp_path / "run" / "model.pt")
    p2 = np.random.default_rng(0).normal(size=(3, body.n_keypoints, 2))
    np.savez(tmp_path / "p.npz", points2d=p2)
    rc, _, err = _run(capsys, "lift", tmp_path / "p.npz", "-o", tmp_path / "l.npz", "--checkpoint",
                      tmp_path / "run" / "model.pt", "--rig", "yours_toy", "--no-progress")
    assert rc == 0, err

    import ezc3d

    c = ezc3d.c3d()
    pts = np.ones((4, body.n_keypoints, 20))
    pts[:3] = np.transpose(body.points3d[:20], (2, 1, 0)) * 1000
    c["parameters"]["POINT"]["RATE"]["value"] = [100]
    c["parameters"]["POINT"]["LABELS"]["value"] = [f"m{i}" for i in range(body.n_keypoints)]
    c["data"]["points"] = pts
    c.write(str(tmp_path / "toy.c3d"))
    cs = read_motion(tmp_path / "toy.c3d", up="y")
    np.testing.assert_allclose(cs.points3d, body.points3d[:20] * 1000, rtol=1e-4, atol=1e-2)


@needs_mirror
@pytest.mark.parametrize("name", ["human_bandai_namco/data/dataset-1_bow_active_001.bvh",
                                  "human_cmu_asfamc/subjects/02/02_01.amc"])
def test_finetune_reads_real_bvh_and_amc_files_as_rigid_skeletons(tmp_path, name):
    """lfm finetune's BVH and ASF/AMC readers on real mocap files: every bone keeps its length over the frames
    (forward kinematics of a rigid skeleton; Bandai-Namco's root is a point on the floor whose position channels
    move it, so its own edges are not bones), the joint tree has N - 1 edges, and y is up."""
    import shutil

    from lfm.data.fetch import fetch
    from lfm.finetune import read_motion

    src = fetch(name, progress=False)
    shutil.copy(src, tmp_path / src.name)
    if src.suffix == ".amc":
        shutil.copy(fetch("human_cmu_asfamc/subjects/02/02.asf", progress=False), tmp_path / "02.asf")
    cs = read_motion(tmp_path / src.name)
    P, E = cs.points3d, np.asarray(cs.edges)
    assert P.ndim == 3 and P.shape[0] > 10 and len(E) == P.shape[1] - 1
    if src.suffix == ".bvh":
        E = E[(E != 0).all(1)]
    bones = np.linalg.norm(P[:, E[:, 0]] - P[:, E[:, 1]], axis=-1)  # (F, E)
    assert np.allclose(bones, bones[:1], atol=1e-4 * np.abs(P).max())
    assert np.median(P[:, :, 1].max(1) - P[:, :, 1].min(1)) > 0.5 * np.median(np.ptp(P[:, :, [0, 2]], axis=1).max(1))


def test_finetune_refuses_a_benchmark_name_and_a_held_out_mix_set():
    """lfm finetune (and its 2D-only variant) checks the user's set name and the mixed sets in one place."""
    from lfm.finetune import MotionError, check_sets

    with pytest.raises(MotionError, match="name='dog' is a benchmark set's name"):
        check_sets("dog", ["human41"])
    with pytest.raises(MotionError, match=r"mix \['cheetah'\]: not in-distribution sets"):
        check_sets("mine", ["cheetah"])
    assert check_sets("mine", ["all", "dog"])[:2] == ("human41", "dance") and "dog" in check_sets("mine", ["all"])
