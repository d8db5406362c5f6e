"""Reading heatmaps for a model (stages/shared/heatmap_store.py): the byte-bounded cache, lazy maps in either
stored dtype (padded into a batch as float16), and the geometry check that names both sets of params."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.batch import collate
from pipeline.store import ArtifactStore, StoreError
from stages.shared.heatmap_store import (
    ByteLRU,
    HeatmapMismatch,
    check_heatmaps,
    open_maps,
    read_array,
    store_params,
)

PARAMS = {"size": 30, "sigma": 1.0, "pad": 0.1, "square": True, "dtype": "float16", "compression_level": 3}


def _store(tmp_path, dtype: str) -> ArtifactStore:
    rng = np.random.default_rng(0)
    maps = rng.random((4, 27, 30, 30)).astype(np.float32)
    stored = (maps * 255).round().astype(np.uint8) if dtype == "uint8" else maps.astype(np.float16)
    store = ArtifactStore(tmp_path / "heatmaps.zarr", mode="a")
    store.set_provenance(stage="heatmaps", params={**PARAMS, "dtype": dtype})
    store.write_sequence("a", {"heatmap": (stored, ("time", "channel", "y", "x"))}, fingerprint="a",
                         attrs={"scale": 1 / 255 if dtype == "uint8" else 1.0})
    return store


def test_the_cache_drops_the_least_recently_used_beyond_its_bytes():
    cache = ByteLRU(250)
    loads = []

    def load(key):
        return lambda: (loads.append(key), np.zeros(100, np.uint8))[1]

    for key in ("a", "b", "a", "c"):  # c pushes out b (a was used since)
        cache.get(key, load(key))
    assert list(cache.items) == ["a", "c"] and cache.bytes == 200
    cache.get("b", load("b"))
    assert loads == ["a", "b", "c", "b"] and cache.hits == 1
    assert ByteLRU(50).get("x", load("x")).nbytes == 100  # too big to keep: returned, not cached
    assert cache.peek("c") is cache.items["c"] and cache.peek("a") is None  # a made room for b
    assert list(cache.items) == ["c", "b"] and cache.hits == 1  # a peek neither counts nor refreshes


@pytest.mark.parametrize("dtype", ["float16", "uint8"])
def test_lazy_maps_read_as_float32_in_either_stored_dtype(tmp_path, dtype):
    store = _store(tmp_path, dtype)
    cache = ByteLRU(2**30)
    maps = open_maps(store, "a", cache)
    assert len(maps) == 4 and maps.shape == (4, 27, 30, 30) and not cache.items  # nothing read yet
    values = np.asarray(maps, dtype=np.float32)
    assert values.dtype == np.float32 and 0.99 < values.max() <= 1.0
    assert maps.nbytes == 4 * 27 * 900 * (1 if dtype == "uint8" else 2) == cache.bytes
    np.testing.assert_array_equal(read_array(store, "a", "heatmap"), values)


@pytest.mark.parametrize("dtype", ["float16", "uint8"])
def test_maps_pad_into_a_batch_as_float16_holding_what_the_store_holds(tmp_path, dtype):
    store = _store(tmp_path, dtype)
    maps = open_maps(store, "a", ByteLRU(2**30))
    exact = np.asarray(maps, dtype=np.float32)
    batch = collate([{"heatmap": maps}, {"heatmap": open_maps(store, "a", ByteLRU(2**30))}])
    assert maps.batch_dtype == np.float16 and batch.arrays["heatmap"].dtype == torch.float16
    held = batch.arrays["heatmap"][0].float().numpy()
    if dtype == "float16":  # the stored values themselves, read without a copy and not writable
        np.testing.assert_array_equal(held, exact)
        view = np.asarray(maps, dtype=np.float16)
        assert not view.flags.writeable and np.shares_memory(view, maps.stored())
        assert np.asarray(maps, dtype=np.float16, copy=True).flags.writeable
    else:  # k / 255 to float16's precision
        np.testing.assert_allclose(held, exact, rtol=2.0**-11, atol=0)
    assert collate([{"heatmap": exact}]).arrays["heatmap"].dtype == torch.float32  # plain arrays stay float32
    mixed = collate([{"heatmap": maps}, {"heatmap": exact[:2]}]).arrays["heatmap"]  # padded in the wider dtype
    assert mixed.dtype == torch.float32
    np.testing.assert_array_equal(mixed[1, :2].numpy(), exact[:2])


def test_store_params_come_from_the_provenance(tmp_path):
    store = _store(tmp_path, "float16")
    assert store_params(store) == PARAMS
    store.set_provenance(stage="keypoints", params={})
    with pytest.raises(StoreError, match="no heatmaps params"):
        store_params(store)


def test_the_check_names_both_params_and_ignores_the_storage_dtype():
    check_heatmaps(PARAMS, {**PARAMS, "dtype": "uint8", "compression_level": 9}, model="m", store="s")
    check_heatmaps(None, {**PARAMS, "sigma": 3.0}, model="m", store="s")  # the model reads no heatmaps
    with pytest.raises(HeatmapMismatch) as err:
        check_heatmaps(PARAMS, {**PARAMS, "sigma": 1.5, "pad": 0.0}, model="models/d/la2ds",
                       store="data/d/heatmaps.zarr")
    text = str(err.value)
    assert "models/d/la2ds" in text and "data/d/heatmaps.zarr" in text
    assert "sigma=1.0" in text and "sigma=1.5" in text and "differ in sigma, pad" in text


@pytest.mark.parametrize("dtype", ["float16", "uint8"])
def test_indexed_maps_read_only_those_frames_from_the_store_or_the_cache(tmp_path, dtype):
    store = _store(tmp_path, dtype)
    whole = read_array(store, "a", "heatmap")
    frames = np.array([3, 0, 0, 2])  # out of order, repeated
    full = ByteLRU(open_maps(store, "a", ByteLRU(0)).nbytes)
    full.get("other", lambda: np.zeros(1, np.uint8))  # one byte short of room for the sequence
    np.testing.assert_array_equal(open_maps(store, "a", full)[frames], whole[frames])
    assert list(full.items) == ["other"]  # no room: only those frames are read, nothing is dropped
    cache = ByteLRU(2**30)
    maps = open_maps(store, "a", cache)
    np.testing.assert_array_equal(maps[frames], whole[frames])
    assert list(cache.items) == [maps.key] and cache.misses == 1  # room: read whole, kept for the epochs to come
    cache.items[maps.key] = cache.items[maps.key].copy()
    cache.items[maps.key][0] = 0  # proves the next read comes from the cache
    picked = maps[frames]
    assert picked.dtype == np.float32 and not picked[1:3].any()
    np.testing.assert_array_equal(picked[[0, 3]], whole[[3, 2]])
    with pytest.raises(IndexError, match="1-D"):
        maps[np.zeros((2, 2), dtype=int)]
