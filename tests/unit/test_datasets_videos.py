import pytest

from pipeline.datasets import DatasetError
from pipeline.datasets.videos import index_rows
from pipeline.manifest import load_manifest


def test_sample_dataset_index(sample_project):
    from pipeline.sequences import read_index

    index = read_index(sample_project / "data" / "sample" / "index.parquet")
    table = index.table
    assert len(table) == 20 and table["activity"].nunique() == 4
    assert set(table["split"]) == {"train", "val"}
    row = index.row(table["id"][0])
    assert row["source_fps"] == 24 and row["fps"] == 12 and row["n_frames"] == row["n_source_frames"] // 2
    assert len(index.labels(row["id"])) == row["n_frames"]
    assert row["pose_format"] == "npz" and row["video"].endswith(".mp4")
    assert len(index.label_names) >= 12


def _spec(project):
    return load_manifest(project / "data_manifest.yaml").get("sample")


def test_labels_beyond_the_video_are_an_error(project):
    labels = project / "data" / "sample" / "raw" / "labels.csv"
    seq = labels.read_text().splitlines()[1].split(",")[0]
    with labels.open("a") as fh:
        fh.write(f"{seq},99999,1\n")
    with pytest.raises(DatasetError, match=f"sequence {seq}: .*labels.csv labels frame 99999 but the video has"):
        index_rows(_spec(project))


def test_duplicate_sequence_ids_are_an_error(project):
    videos = project / "data" / "sample" / "raw" / "videos"
    first = sorted(videos.glob("*.mp4"))[0]
    (videos / "again").mkdir()
    (videos / "again" / first.name).write_bytes(first.read_bytes())
    with pytest.raises(DatasetError, match=f"duplicate sequence id {first.stem}"):
        index_rows(_spec(project))


def test_sequences_csv_must_cover_every_video(project):
    path = project / "data" / "sample" / "raw" / "sequences.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DatasetError, match="lists no activity/split for sequence"):
        index_rows(_spec(project))


def test_corrupt_video_names_sequence_and_file(project):
    video = sorted((project / "data" / "sample" / "raw" / "videos").glob("*.mp4"))[0]
    video.write_bytes(video.read_bytes()[:200])
    with pytest.raises(DatasetError, match=f"sequence {video.stem}: .*{video.name}"):
        index_rows(_spec(project))
