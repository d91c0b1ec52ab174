"""Embedded data (MNIST 5k, photo patches) and the local-folder loaders (MNIST IDX, image folders)."""
import gzip
import hashlib
import inspect
import re
import shutil
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data import (PHOTOS, TEST_PHOTOS, TRAIN_PHOTOS, image_folder, list_images, mnist5k, mnist_idx, photo,
                         photo_patches, read_idx)
from genlab.data import mnist as mnist_module
from genlab.data import photos as photos_module
from genlab.paths import data_dir, embedded_file


def _sha(x) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------- MNIST 5k

@pytest.mark.parametrize("split,n", [("train", 4000), ("test", 1000), ("all", 5000)])
def test_mnist5k_shapes_dtypes_ranges(split, n):
    x, y = mnist5k(split)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert x.min() == 0.0 and x.max() == 1.0  # MNIST digits are black background with saturated strokes
    assert set(y.unique().tolist()) == set(range(10))
    xu, yu = mnist5k(split, as_uint8=True)
    assert xu.dtype == torch.uint8 and torch.equal(xu.float() / 255.0, x) and torch.equal(yu, y)


def test_mnist5k_class_balance():
    assert torch.bincount(mnist5k("train")[1], minlength=10).tolist() == [400] * 10
    assert torch.bincount(mnist5k("test")[1], minlength=10).tolist() == [100] * 10
    assert torch.bincount(mnist5k("all")[1], minlength=10).tolist() == [500] * 10


def test_mnist5k_splits_are_disjoint_and_cover_all():
    x_all, y_all = mnist5k("all", as_uint8=True)
    idx = mnist_module.split_indices(y_all.numpy())
    assert len(np.intersect1d(idx["train"], idx["test"])) == 0
    assert np.array_equal(np.sort(np.concatenate([idx["train"], idx["test"]])), np.arange(5000))
    for split in ("train", "test"):  # the loaded split is exactly those rows of the file
        x, y = mnist5k(split, as_uint8=True)
        assert torch.equal(x, x_all[idx[split]]) and torch.equal(y, y_all[idx[split]])
    # no test image is a pixel-identical copy of a training image
    train_hashes = {_sha(im) for im in mnist5k("train", as_uint8=True)[0].numpy()}
    assert not any(_sha(im) in train_hashes for im in mnist5k("test", as_uint8=True)[0].numpy())


def test_mnist5k_split_is_deterministic():
    a, b = mnist5k("train"), mnist5k("train")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    idx = mnist_module.split_indices(mnist5k("all")[1].numpy())
    # the same split on every machine: numpy's PCG64 stream is fixed for a given seed
    assert _sha(idx["train"].astype("<i8")) == "fab110f75b3e6fe162c7fde76d875a7465225d6d15ce6a643d1777219318bd89"
    assert idx["train"][:5].tolist() == [1037, 3203, 2674, 2788, 1608]
    assert idx["test"][:5].tolist() == [2728, 1491, 943, 4158, 4421]


def test_mnist5k_corrupt_copy_is_rejected(tmp_path, monkeypatch):
    raw = bytearray((data_dir() / "mnist5k.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "mnist5k.npz").write_bytes(bytes(raw))
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=r"corrupt \(sha256 mismatch\).*git checkout -- data/mnist5k.npz"):
        mnist5k("train")


def test_mnist5k_missing_file_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing.*git checkout -- data/mnist5k.npz"):
        mnist5k("test")


def test_mnist5k_intact_copy_elsewhere_loads(tmp_path, monkeypatch):
    x_default, y_default = mnist5k("test")
    shutil.copy(embedded_file("mnist5k.npz"), tmp_path / "mnist5k.npz")
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    assert embedded_file("mnist5k.npz") == tmp_path / "mnist5k.npz"
    x, y = mnist5k("test")
    assert torch.equal(x, x_default) and torch.equal(y, y_default)


def test_mnist5k_bad_split():
    with pytest.raises(ValueError, match="'train', 'test' or 'all'"):
        mnist5k("valid")


# ----------------------------------------------------------------------------------------------- photo patches

def _grid_crops(name: str, size: int) -> torch.Tensor:
    """Independent re-cut of one photo's grid, straight from skimage (what photo_patches promises to return)."""
    import skimage.data

    img = torch.from_numpy(np.ascontiguousarray(getattr(skimage.data, name)())).permute(2, 0, 1)
    pos = photos_module.grid_positions(img.shape[1], img.shape[2], size)
    return torch.stack([img[:, y:y + size, x:x + size] for y, x in pos]).float() / 255.0


def test_photo_patch_shapes_range_and_counts():
    x = photo_patches("train", 32)
    assert x.shape == (2786, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.min() == 0.0 and x.max() == 1.0
    assert photo_patches("test", 32).shape == (459, 3, 32, 32)
    assert photo_patches("test", 16, n=10).shape == (10, 3, 16, 16)
    assert photo_patches("test", 8, grayscale=True).shape[1:] == (1, 8, 8)


def test_grid_is_centred_with_half_overlap():
    # chelsea is 300 x 451; size 32 -> stride 16, 17 x 27 positions, leftover 12 and 3 pixels split around the grid
    pos = photos_module.grid_positions(300, 451, 32)
    assert len(pos) == 17 * 27
    assert pos[0] == (6, 1) and pos[1] == (6, 17) and pos[27] == (22, 1) and pos[-1] == (6 + 16 * 16, 1 + 26 * 16)
    assert photos_module.grid_positions(4, 4, 4) == [(0, 0)]
    assert photos_module.grid_positions(5, 4, 2) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2),
                                                     (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2)]


def test_split_is_by_source_photo():
    assert set(TRAIN_PHOTOS).isdisjoint(TEST_PHOTOS)
    assert set(TRAIN_PHOTOS) | set(TEST_PHOTOS) == {p.name for p in PHOTOS}
    size = 32
    for split, names in (("train", TRAIN_PHOTOS), ("test", TEST_PHOTOS)):
        expected = torch.cat([_grid_crops(name, size) for name in names])
        perm = np.random.default_rng(0).permutation(len(expected))  # the documented order: a seeded permutation
        assert torch.equal(photo_patches(split, size, seed=0), expected[perm])
    train = {_sha(p) for p in photo_patches("train", size).numpy()}
    assert not any(_sha(p) in train for p in photo_patches("test", size).numpy())


def test_photo_patches_deterministic_seed_and_subset():
    a, b = photo_patches("train", 16, seed=3), photo_patches("train", 16, seed=3)
    assert torch.equal(a, b)
    c = photo_patches("train", 16, seed=4)
    assert not torch.equal(a, c)  # another order ...
    assert sorted(map(_sha, a.numpy())) == sorted(map(_sha, c.numpy()))  # ... of the same patches
    assert torch.equal(photo_patches("train", 16, n=100, seed=3), a[:100])  # n takes a prefix of the seeded order
    # bit-identical on every machine (PNG decoding + integer arithmetic + one IEEE division; PCG64 order)
    assert _sha(photo_patches("test", 16, n=64, seed=0).numpy()) == \
        "92115e807f81c7850d4b2ad6ef6aa1da86201b95c5f882ccea073d1895774e02"
    assert _sha(photo_patches("test", 16, n=64, seed=0, grayscale=True).numpy()) == \
        "b642a35407d6abfed710ce08a3c16d994a6dab7a6f7fc5d3cbbbe34eec9fc1f1"


def test_grayscale_is_bt601_luma():
    rgb, grey = photo_patches("test", 8, n=50), photo_patches("test", 8, n=50, grayscale=True)
    luma = 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
    assert grey.shape == (50, 1, 8, 8) and torch.allclose(grey, luma, atol=1e-6)
    white = torch.full((1, 3, 1, 1), 255, dtype=torch.int32)  # the weights sum to 1: white stays exactly 1.0
    assert (299 * white[:, 0] + 587 * white[:, 1] + 114 * white[:, 2]).item() / (1000.0 * 255.0) == 1.0


def test_results_are_fresh_tensors_and_cut_once():
    photos_module._patches_uint8.cache_clear()
    x = photo_patches("test", 24)
    x.zero_()
    assert photo_patches("test", 24).max() > 0  # the cache was not modified through the returned tensor
    info = photos_module._patches_uint8.cache_info()
    assert info.misses == 1 and info.hits == 1  # the second call reused the cut patches


def test_photo_is_the_whole_picture():
    cat = photo("chelsea")
    assert cat.shape == (3, 300, 451) and cat.dtype == torch.float32 and 0.0 <= cat.min() and cat.max() <= 1.0
    y, x = photos_module.grid_positions(300, 451, 32)[0]
    assert torch.equal(_grid_crops("chelsea", 32)[0], cat[:, y:y + 32, x:x + 32])
    with pytest.raises(ValueError, match="unknown photo 'rocket'"):
        photo("rocket")


def test_photos_load_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("photo_patches tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    photos_module._photo_uint8.cache_clear()
    photos_module._patches_uint8.cache_clear()
    try:
        assert photo_patches("train", 64).shape[0] > 0 and photo_patches("test", 64).shape[0] > 0
    finally:  # leave no half-filled cache behind if this failed
        photos_module._photo_uint8.cache_clear()
        photos_module._patches_uint8.cache_clear()


def test_photos_are_files_inside_the_skimage_wheel():
    import skimage.data

    for p in PHOTOS:  # the loader reads a file shipped in the package, not a pooch download cache
        src = inspect.getsource(getattr(skimage.data, p.name))
        filename = re.search(r"_load\(['\"]data/([\w.]+)['\"]", src).group(1)
        assert filename.endswith(".png")  # lossless: decoded pixels are the same everywhere
        assert (Path(skimage.data.__file__).parent / filename).is_file(), filename


def test_licence_notes_quote_the_skimage_docstrings():
    import skimage.data

    for p in PHOTOS:
        doc = " ".join(getattr(skimage.data, p.name).__doc__.split())
        quoted = re.findall(r"'([^']+)'", p.licence)
        assert quoted, p.name
        for q in quoted:
            assert q in doc, (p.name, q)


def test_changed_photo_is_detected(monkeypatch):
    import skimage.data

    original = skimage.data.chelsea
    monkeypatch.setattr(skimage.data, "chelsea", lambda: original()[::-1].copy())  # same shape, other pixels
    photos_module._photo_uint8.cache_clear()
    photos_module._patches_uint8.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="not the one this patch set was built from.*scikit-image==0.26.0"):
            photo_patches("test", 32)
    finally:
        photos_module._photo_uint8.cache_clear()
        photos_module._patches_uint8.cache_clear()


@pytest.mark.parametrize("kwargs,match", [
    (dict(split="valid"), "split must be 'train' or 'test'"),
    (dict(size=1), "size must be an int between 2 and 300"),
    (dict(size=301), "size must be an int between 2 and 300"),
    (dict(size=32.0), "size must be an int"),
    (dict(size=True), "size must be an int"),
    (dict(split="test", size=32, n=0), "n must be an int between 1 and 459"),
    (dict(split="test", size=32, n=460), "n must be an int between 1 and 459.*smaller size"),
])
def test_photo_patches_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        photo_patches(**kwargs)


# ------------------------------------------------------------------------------------------- MNIST from IDX files

def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder, split="train", n=6, gz=True, dotted=False, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    for kind, arr, ext in (("images", images, "idx3-ubyte"), ("labels", labels, "idx1-ubyte")):
        name = f"{prefix}-{kind}{'.' if dotted else '-'}{ext}" + (".gz" if gz else "")
        data = _idx_bytes(arr)
        (folder / name).write_bytes(gzip.compress(data) if gz else data)
    return images, labels


@pytest.mark.parametrize("gz,dotted", [(True, False), (False, False), (False, True)])
def test_mnist_idx_reads_the_standard_files(tmp_path, gz, dotted):
    images, labels = _write_mnist(tmp_path, "test", n=7, gz=gz, dotted=dotted)
    x, y = mnist_idx(tmp_path, "test")
    assert x.shape == (7, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(images).unsqueeze(1).float() / 255.0)
    assert y.tolist() == labels.tolist()
    xu, _ = mnist_idx(str(tmp_path), "test", as_uint8=True)  # str paths work too
    assert xu.dtype == torch.uint8 and torch.equal(xu[:, 0], torch.from_numpy(images))


def test_mnist_idx_same_conventions_as_mnist5k(tmp_path):
    x5, y5 = mnist5k("test", as_uint8=True)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(x5[:, 0].numpy()))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(y5.numpy()))
    x, y = mnist_idx(tmp_path)
    assert torch.equal(x, mnist5k("test")[0]) and torch.equal(y, y5)


def test_mnist_idx_missing_folder_says_what_to_put_where(tmp_path):
    missing = tmp_path / "mnist"
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(missing))} does not exist.*"
                                                r"train-images-idx3-ubyte\.gz.*yann\.lecun\.com/exdb/mnist"):
        mnist_idx(missing)


def test_mnist_idx_missing_files_named(tmp_path):
    _write_mnist(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\.gz and t10k-labels-idx1-ubyte\.gz not "
                                                rf"found in {re.escape(str(tmp_path))}.*mirror"):
        mnist_idx(tmp_path, "test")
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"^train-labels-idx1-ubyte\.gz not found"):
        mnist_idx(tmp_path, "train")


@pytest.mark.parametrize("mutate,match", [
    (lambda b: b"\x08\x03" + b[2:], "bad IDX header"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "type code 0x0d"),
    (lambda b: b[:-5], r"declares shape \(6, 28, 28\).*holds 4699"),
    (lambda b: b[:6], "truncated"),
    (lambda b: b"", "magic number missing"),
])
def test_mnist_idx_corrupt_header(tmp_path, mutate, match):
    _write_mnist(tmp_path, "train", gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(ValueError, match=match + ".*corrupt or not an IDX file; download it again"):
        mnist_idx(tmp_path)


def test_mnist_idx_damaged_gzip_and_mismatched_pair(tmp_path):
    _write_mnist(tmp_path, "train", gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="damaged; download it again"):
        mnist_idx(tmp_path)
    _write_mnist(tmp_path, "train", n=6, gz=True)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(_idx_bytes(np.zeros(5, np.uint8))))
    with pytest.raises(ValueError, match="holds 6 images but .* holds 5 labels"):
        mnist_idx(tmp_path)
    labels.write_bytes(gzip.compress(_idx_bytes(np.zeros((6, 28, 28), np.uint8))))
    with pytest.raises(ValueError, match="is it an images file"):
        mnist_idx(tmp_path)


def test_read_idx_generic_shape(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(arr))
    assert np.array_equal(read_idx(tmp_path / "a.idx"), arr)


def test_mnist_idx_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        mnist_idx(tmp_path, "all")


# ------------------------------------------------------------------------------------------------ image folders

def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode=mode).save(path)


def test_image_folder_center_crops_and_resizes(tmp_path):
    wide = np.zeros((10, 30, 3), np.uint8)  # 30 wide, 10 tall: red | green | blue thirds
    wide[:, :10] = (255, 0, 0)
    wide[:, 10:20] = (0, 255, 0)
    wide[:, 20:] = (0, 0, 255)
    _save(tmp_path / "wide.png", wide)
    tall = np.zeros((40, 8, 3), np.uint8)  # 8 wide, 40 tall: only rows 16..23 survive the crop
    tall[16:24] = (10, 20, 30)
    _save(tmp_path / "tall.png", tall)
    x = image_folder(tmp_path, 4)
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32
    assert torch.equal(x[0], torch.tensor([10, 20, 30]).view(3, 1, 1).expand(3, 4, 4) / 255.0)  # tall.png first
    assert torch.equal(x[1], torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1).expand(3, 4, 4))  # the green middle
    detail = np.random.default_rng(0).integers(0, 256, (6, 6, 3))  # a square image at its own size is unchanged
    _save(tmp_path / "z.png", detail)
    assert torch.equal(image_folder(tmp_path, 6)[2], torch.from_numpy(detail).permute(2, 0, 1).float() / 255.0)


def test_image_folder_recursive_sorted_modes_and_limit(tmp_path):
    _save(tmp_path / "b" / "2.png", np.full((5, 5), 50), mode="L")  # grey -> replicated
    _save(tmp_path / "b" / "10.PNG", np.full((5, 5, 4), (100, 0, 0, 7)), mode="RGBA")  # alpha dropped
    _save(tmp_path / "a.jpg", np.full((8, 8, 3), 128))
    (tmp_path / "notes.txt").write_text("not an image")
    names = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert names == ["a.jpg", "b/10.PNG", "b/2.png"]
    x = image_folder(tmp_path, 5)
    assert x.shape == (3, 3, 5, 5) and 0.0 <= x.min() and x.max() <= 1.0
    assert torch.allclose(x[0], torch.full((3, 5, 5), 128 / 255.0), atol=2 / 255)  # jpeg: near, not exact
    assert torch.equal(x[1], torch.tensor([100.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 5, 5) / 255.0)
    assert torch.equal(x[2], torch.full((3, 5, 5), 50 / 255.0))
    assert torch.equal(image_folder(tmp_path, 5, limit=2), x[:2])


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: create it and put your images"):
        image_folder(tmp_path / "nope", 8)
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"no images found under .*put \.png or \.jpg files there"):
        image_folder(tmp_path, 8)
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        image_folder(tmp_path / "readme.md", 8)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png.*replace or remove that file"):
        image_folder(tmp_path, 8)
    with pytest.raises(ValueError, match="size must be a positive int"):
        image_folder(tmp_path, 0)
    with pytest.raises(ValueError, match="limit must be a positive int"):
        image_folder(tmp_path, 8, limit=0)
