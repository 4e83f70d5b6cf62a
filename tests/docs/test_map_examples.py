"""The worked examples of docs/map.md, run as a user would, against the reference:
the user's function applied by hand to the whole array, plane or file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.feature
import skimage.filters
import skimage.io
import zarr

from helpers import REPO, Cli


def _result(store: Path) -> np.ndarray:  # type: ignore[type-arg]
    group = zarr.open_group(store, mode="r")
    (name,) = [k for k, _ in group.arrays()]
    return np.asarray(group[name][...])


def test_canny_on_every_plane_of_a_stack(cli: Cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    stack = rng.random((5, 64, 48)).astype("float32")
    stack[:, 16:40, 12:30] += 2.0  # a bright square: edges to find
    src = tmp_path / "stack.zarr"
    zarr.create_array(src, data=stack, chunks=(2, 32, 16), dimension_names=["z", "y", "x"])
    out = tmp_path / "edges.zarr"
    r = cli("map-blocks", str(src), str(out), "--fn", "skimage.feature:canny",
            "--kwarg", "sigma=2", "--core", "y", "--core", "x", "--dtype", "bool",
            "--site", "local")
    assert r.code == 0, r
    want = np.stack([skimage.feature.canny(plane, sigma=2) for plane in stack])
    got = _result(out)
    assert got.dtype == np.bool_
    assert want.any()
    np.testing.assert_array_equal(got, want)


def test_gaussian_over_a_glob_of_rgb_jpegs_per_channel(cli: Cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        skimage.io.imsave(photos / f"img{i:02d}.jpg",
                          rng.integers(0, 255, (60, 80, 3), dtype=np.uint8),
                          check_contrast=False)
    spec = tmp_path / "smooth.toml"
    spec.write_text(f"""\
[input]
path = "{photos}/*.jpg"

[[steps]]
map = "skimage.filters:gaussian"
kwargs = {{ sigma = 2.0, preserve_range = true }}
core = ["y", "x"]
dtype = "float64"

[output]
path = "{tmp_path}/smooth.zarr"
""")
    r = cli("submit", str(spec), "--site", "local")
    assert r.code == 0, r
    files = sorted(photos.glob("*.jpg"))
    want = np.stack([
        np.stack([skimage.filters.gaussian(skimage.io.imread(f)[..., c].astype(np.float64),
                                           sigma=2.0, preserve_range=True)
                  for c in range(3)], axis=-1)
        for f in files])
    got = _result(tmp_path / "smooth.zarr")
    assert got.shape == (4, 60, 80, 3)
    np.testing.assert_array_equal(got, want)


def test_the_examples_folder_holds_what_the_docs_name() -> None:
    text = (REPO / "docs" / "map.md").read_text(encoding="utf-8")
    for name in ("clean_json.py", "cut_pieces.py", "thumbnail.py"):
        assert (REPO / "docs" / "examples" / name).is_file()
        assert f"docs/examples/{name}" in text, name
