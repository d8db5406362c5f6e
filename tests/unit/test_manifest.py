import pytest

from pipeline.manifest import ManifestError, load_manifest


def write(tmp_path, text):
    path = tmp_path / "data_manifest.yaml"
    path.write_text(text)
    return path


def test_repository_manifest_loads_all_datasets():
    from tests.conftest import REPO

    manifest = load_manifest(REPO / "data_manifest.yaml")
    assert {"sample", "pennaction", "h2o", "ikea_asm"} <= set(manifest.datasets)
    assert manifest.datasets["pennaction"].layout == "penn13"
    assert manifest.datasets["h2o"].kind == "h2o"


def test_relative_root_and_env_expansion(tmp_path, monkeypatch):
    (tmp_path / "raw").mkdir()
    monkeypatch.setenv("MY_ROOT", str(tmp_path / "raw"))
    path = write(tmp_path, "datasets:\n  a: {kind: videos, root: raw, fps: 10}\n  b: {kind: videos, root: '${MY_ROOT}'}\n"
                 "  c: {kind: videos, root: '${UNSET_VAR_X:-raw}'}\n")
    manifest = load_manifest(path)
    assert manifest.get("a").root == tmp_path / "raw"
    assert manifest.get("b").root == tmp_path / "raw"
    assert manifest.get("c").root == tmp_path / "raw"
    assert manifest.get("a").fps == 10.0


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{kind: vidoes, root: x}", "key 'kind' is 'vidoes'"),
        ("{kind: videos, root: x, colour: red}", "unknown key(s) ['colour'] for kind 'videos'"),
        ("{kind: penn_action, root: x, camera: cam4}", "unknown key(s) ['camera']"),
        ("{kind: videos}", "missing key 'root'"),
        ("{kind: videos, root: x, fps: -3}", "key 'fps' must be a positive number"),
        ("{kind: videos, root: x, layout: body99}", "key 'layout' is 'body99'"),
    ],
)
def test_bad_entries_name_dataset_and_key(tmp_path, entry, message):
    path = write(tmp_path, f"datasets:\n  mine: {entry}\n")
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert "dataset 'mine'" in str(err.value)
    assert message in str(err.value)


def test_missing_root_reported_when_dataset_is_used(tmp_path):
    manifest = load_manifest(write(tmp_path, "datasets:\n  mine: {kind: videos, root: nowhere}\n"))
    with pytest.raises(ManifestError, match="dataset 'mine': root .*nowhere does not exist"):
        manifest.get("mine")
    assert manifest.get("mine", check_root=False).name == "mine"


def test_unknown_dataset(tmp_path):
    manifest = load_manifest(write(tmp_path, "datasets:\n  mine: {kind: videos, root: .}\n"))
    with pytest.raises(ManifestError, match="unknown dataset 'theirs'.*known: \\['mine'\\]"):
        manifest.get("theirs")


def test_an_unset_variable_blocks_only_its_own_dataset(tmp_path):
    """The docstring promised it; the whole manifest used to fail on the first unset variable."""
    (tmp_path / "raw").mkdir()
    manifest = load_manifest(write(tmp_path, "datasets:\n  ok: {kind: videos, root: raw}\n"
                                             "  h2o: {kind: h2o, root: '${SURELY_UNSET_VAR_123}', split: s.json}\n"))
    assert manifest.get("ok").root == tmp_path / "raw"
    with pytest.raises(ManifestError, match=r"dataset 'h2o', key 'root': environment variable \$\{SURELY_UNSET_VAR_123\}"):
        manifest.get("h2o")


def test_a_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "datasets:\n  a: {kind: videos, root: raw\n  b: [\n")
    with pytest.raises(ManifestError, match=r"data_manifest.yaml: line \d+, column \d+: not valid YAML"):
        load_manifest(path)
