import json

import cv2
import numpy as np
import pytest

from pipeline.datasets import DatasetError
from pipeline.datasets.ikea_asm import index_rows, read_segments
from pipeline.datasets.segments import segments_to_frames
from pipeline.manifest import DatasetSpec

CASE = "Kallax_Shelf_Drawer/0001_oak_floor_01_01_2019_08_14_17_17"


def make_recording(root, case, n=10, poses=True):
    cam = root / case / "dev3"
    (cam / "images").mkdir(parents=True)
    writer = cv2.VideoWriter(str(cam / "images" / "scan_video.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 24))
    for i in range(n):
        writer.write(np.full((24, 32, 3), i * 10, np.uint8))
    writer.release()
    if poses:
        pose_dir = cam / "predictions" / "pose2d" / "openpose"
        pose_dir.mkdir(parents=True)
        for i in range(n):
            person = {"pose_keypoints_2d": [1.0] * 75}
            (pose_dir / f"scan_video_{i:012d}_keypoints.json").write_text(json.dumps({"people": [person]}))


def write_csv(path, rows):
    lines = ["case_id,case_name,start_frame,end_frame_inclusive,duration_frames,gt_label,gt_label_name"]
    lines += [f"0,{case},{s},{e},{e - s + 1},{lab},{name}" for case, s, e, lab, name in rows]
    path.write_text("\n".join(lines) + "\n")


def spec(root, labels, **extra):
    return DatasetSpec(name="ikea_asm", kind="ikea_asm", root=root, fps=25.0, layout="body25",
                       options={"labels": str(labels), "camera": "dev3", **extra})


def test_indexes_videos_poses_and_segments(tmp_path):
    other = "Kallax_Shelf_Drawer/0002_white_floor_02_02_2019_08_14_17_17"
    make_recording(tmp_path / "ikea", CASE)
    make_recording(tmp_path / "ikea", other, poses=False)
    write_csv(tmp_path / "gt.csv", [(CASE, 0, 3, 0, "NA"), (CASE, 4, 9, 5, "pick up shelf")])
    rows, names = index_rows(spec(tmp_path / "ikea", tmp_path / "gt.csv"))
    by_id = {r["id"]: r for r in rows}
    first = by_id[CASE.replace("/", "_")]
    assert first["labels"] == [0, 0, 0, 0, 5, 5, 5, 5, 5, 5] and first["split"] == "test"
    assert first["pose_format"] == "openpose_json" and first["activity"] == "Kallax_Shelf_Drawer"
    second = by_id[other.replace("/", "_")]
    assert second["split"] == "train" and second["labels"] is None and second["pose"] == ""
    assert names == {0: "NA", 5: "pick up shelf"}


def test_segment_past_the_video_names_sequence_and_file(tmp_path):
    make_recording(tmp_path / "ikea", CASE, n=10)
    write_csv(tmp_path / "gt.csv", [(CASE, 0, 14, 3, "x")])
    with pytest.raises(DatasetError, match=f"sequence {CASE} .*gt.csv.*reaches frame 14 .*10 frames"):
        index_rows(spec(tmp_path / "ikea", tmp_path / "gt.csv"))


def test_corrupt_video_names_the_file(tmp_path):
    cam = tmp_path / "ikea" / CASE / "dev3" / "images"
    cam.mkdir(parents=True)
    (cam / "scan_video.avi").write_bytes(b"not a video at all")
    write_csv(tmp_path / "gt.csv", [])
    with pytest.raises(DatasetError, match="scan_video.avi"):
        index_rows(spec(tmp_path / "ikea", tmp_path / "gt.csv"))


@pytest.mark.realdata
def test_real_segments_cover_every_frame(shared_data):
    segments, names = read_segments(shared_data / "ikea_asm" / "ikea_asm_test_gt_segments.csv", where="ikea")
    assert len(segments) == 117 and len(names) == 33 and names[0] == "NA"
    kallax = [c for c in segments if c.startswith("Kallax_Shelf_Drawer/")]
    assert len(kallax) == 29
    for case, segs in segments.items():
        n = max(e for _, e, _ in segs) + 1
        frames = segments_to_frames(segs, n, background=-1, where=case)
        assert np.all(frames >= 0), f"{case} has uncovered frames"
