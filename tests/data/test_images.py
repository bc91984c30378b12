"""ImageFolder on PNGs the test writes with Pillow, and the image transforms."""

import sys

import numpy as np
import pytest

import engine
from data import DataLoader, ImageFolder
from data.transforms import (
    Compose, Normalize, RandomCrop, RandomHorizontalFlip, RandomRotation, Resize, ToArray,
    rotate,
)

rng = np.random.default_rng(0)
HWC = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
CHW = rng.random((3, 6, 8), dtype=np.float32)


@pytest.fixture
def Image():
    return pytest.importorskip("PIL.Image")


@pytest.fixture
def folder(tmp_path, Image):
    """root/b_dog/x.png, root/a_cat/2.png, root/a_cat/sub/1.PNG, plus a non-image file."""
    images = {}
    for rel, seed in (("b_dog/x.png", 1), ("a_cat/2.png", 2), ("a_cat/sub/1.PNG", 3)):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 256, (5, 7, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        images[rel] = pixels
    (tmp_path / "a_cat" / "notes.txt").write_text("not an image")
    return tmp_path, images


# ---------------------------------------------------------------- ImageFolder

def test_image_folder_layout_and_pixels(folder):
    root, images = folder
    ds = ImageFolder(root)
    assert ds.classes == ["a_cat", "b_dog"] and ds.class_to_idx == {"a_cat": 0, "b_dog": 1}
    rels = [str(p.relative_to(root)) for p in map(type(root), (s[0] for s in ds.samples))]
    assert rels == ["a_cat/2.png", "a_cat/sub/1.PNG", "b_dog/x.png"]   # torchvision's order
    assert ds.targets == [0, 0, 1] and len(ds) == 3
    img, target = ds[1]
    assert img.dtype == np.uint8 and img.shape == (5, 7, 3) and target == 0
    np.testing.assert_array_equal(img, images["a_cat/sub/1.PNG"])      # PNG is lossless


def test_image_folder_transforms_mode_and_loader(folder):
    root, images = folder
    gray = ImageFolder(root, mode="L")
    assert gray[0][0].shape == (5, 7)
    ds = ImageFolder(root, transform=Compose([Resize((4, 4)), ToArray()]),
                     target_transform=lambda t: t * 10)
    x, y = ds[2]
    assert x.shape == (3, 4, 4) and x.dtype == np.float32 and y == 10
    assert 0.0 <= x.min() and x.max() <= 1.0
    xb, yb = next(iter(DataLoader(ds, batch_size=3)))
    assert xb.shape == (3, 3, 4, 4) and xb.dtype == np.float32 and yb.tolist() == [0, 0, 10]


def test_image_folder_errors(tmp_path, Image):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no class folders"):
        ImageFolder(tmp_path)
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "ok").mkdir()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "ok" / "a.png")
    with pytest.raises(FileNotFoundError, match=r"no image files in class folders "
                                                r"\['empty_class'\]"):
        ImageFolder(tmp_path)
    (tmp_path / "empty_class" / "bad.png").write_bytes(b"not a png at all")
    ds = ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="cannot decode .*bad.png"):
        ds[0]


def test_missing_pillow_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'xpgrad\[examples\]'"):
        ImageFolder(tmp_path)
    with pytest.raises(ImportError, match="Pillow"):
        Resize(3)(HWC)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(HWC), HWC[:, ::-1])  # NumPy only


# ---------------------------------------------------------------- transforms

def test_to_array():
    out = ToArray()(HWC)
    assert out.shape == (3, 6, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.transpose(HWC, (2, 0, 1)).astype(np.float32) / 255)
    assert ToArray()(HWC[:, :, 0]).shape == (1, 6, 8)
    assert ToArray()(CHW) is CHW


def test_to_array_reads_pillow_images(Image):
    out = ToArray()(Image.fromarray(HWC))
    np.testing.assert_array_equal(out, np.transpose(HWC, (2, 0, 1)).astype(np.float32) / 255)


def test_resize_sizes_follow_torchvision(Image):
    wide = np.zeros((20, 40, 3), np.uint8)
    assert Resize(10)(wide).shape == (10, 20, 3)                 # shorter side -> 10
    assert Resize(10)(np.zeros((3, 45, 20), np.float32)).shape == (3, 22, 10)
    assert Resize((5, 7))(wide).shape == (5, 7, 3)
    assert Resize(20)(wide) is wide


def test_resize_values_match_pillow(Image):
    gray = rng.integers(0, 256, (9, 13), dtype=np.uint8)
    ours = Resize((5, 6))(gray).astype(int)
    ref = np.asarray(Image.fromarray(gray).resize((6, 5), Image.BILINEAR)).astype(int)
    assert np.abs(ours - ref).max() <= 1                         # uint8 vs float rounding
    chw = Resize((4, 5), interpolation="nearest")(CHW)
    ref_c = np.asarray(Image.fromarray(CHW[1]).resize((5, 4), Image.NEAREST))
    assert chw.dtype == np.float32
    np.testing.assert_array_equal(chw[1], ref_c)
    with pytest.raises(ValueError, match="interpolation"):
        Resize(3, interpolation="area")


def test_normalize():
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    out = Normalize(mean, std)(CHW)
    assert out.dtype == np.float32
    expected = (CHW - np.float32(mean).reshape(3, 1, 1)) / np.float32(std).reshape(3, 1, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(Normalize(0.5, 0.5)(CHW), (CHW - 0.5) / 0.5, rtol=1e-6)
    with pytest.raises(TypeError, match="apply ToArray first"):
        Normalize(mean, std)(HWC)
    with pytest.raises(ValueError, match="mean has 2 values for an image with 3 channels"):
        Normalize([0.1, 0.2], 1.0)(CHW)
    with pytest.raises(ValueError, match="zero"):
        Normalize(0.0, [1.0, 0.0])


def test_random_horizontal_flip_uses_engine_generator():
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(HWC), HWC[:, ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(CHW), CHW[:, :, ::-1])
    assert RandomHorizontalFlip(p=0.0)(CHW) is CHW
    flip = RandomHorizontalFlip()
    engine.manual_seed(4)
    flipped = [not np.array_equal(flip(CHW), CHW) for _ in range(20)]
    engine.manual_seed(4)
    draws = engine.default_generator().random(20)
    assert flipped == (draws < 0.5).tolist()
    assert 0 < sum(flipped) < 20


def test_random_crop_window_and_padding():
    engine.manual_seed(9)
    out = RandomCrop(4, padding=2)(HWC)
    engine.manual_seed(9)
    g = engine.default_generator()
    i, j = int(g.integers(0, 6 + 4 - 4 + 1)), int(g.integers(0, 8 + 4 - 4 + 1))
    padded = np.pad(HWC, ((2, 2), (2, 2), (0, 0)))
    assert out.shape == (4, 4, 3)
    np.testing.assert_array_equal(out, padded[i:i + 4, j:j + 4])
    chw = RandomCrop((2, 3))(CHW)
    assert chw.shape == (3, 2, 3) and chw.dtype == np.float32
    assert RandomCrop((6, 8))(CHW).tolist() == CHW.tolist()
    grown = RandomCrop(10, pad_if_needed=True, fill=7)(HWC[:, :, 0])
    assert grown.shape == (10, 10) and (grown == 7).sum() >= 100 - 48
    with pytest.raises(ValueError, match=r"crop size \(7, 7\) is larger than the"):
        RandomCrop(7)(HWC)


def test_rotate_quarter_turns_match_rot90():
    square = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rotate(square, 90), np.rot90(square, 1, axes=(0, 1)))
    np.testing.assert_array_equal(rotate(square, -90), np.rot90(square, -1, axes=(0, 1)))
    chw = rng.random((2, 4, 4), dtype=np.float32)
    out = rotate(chw, 90)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.rot90(chw, 1, axes=(1, 2)))
    np.testing.assert_array_equal(rotate(chw, 180, "bilinear"), chw[:, ::-1, ::-1])
    np.testing.assert_array_equal(rotate(CHW, 0), CHW)


def test_rotate_matches_pillow(Image):
    img = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    for angle in (30, -45, 137):
        ref = np.asarray(Image.fromarray(img).rotate(angle, resample=Image.NEAREST))
        assert (rotate(img, angle) != ref).mean() < 0.03         # ties at .5 may round apart
        ref_b = np.asarray(Image.fromarray(img).rotate(angle, resample=Image.BILINEAR))
        ours_b = rotate(img, angle, "bilinear")
        inner = (slice(6, 10), slice(6, 10))                     # away from border handling
        assert np.abs(ours_b[inner].astype(int) - ref_b[inner]).max() <= 1


def test_random_rotation_draws_angle_from_engine():
    engine.manual_seed(2)
    out = RandomRotation(30)(CHW)
    engine.manual_seed(2)
    angle = engine.default_generator().uniform(-30.0, 30.0)
    np.testing.assert_array_equal(out, rotate(CHW, angle))
    assert RandomRotation((90, 90))(HWC[:6, :6]).tolist() == np.rot90(HWC[:6, :6]).tolist()
    with pytest.raises(ValueError, match="non-negative"):
        RandomRotation(-5)


def test_compose_and_input_checks():
    pipeline = Compose([RandomHorizontalFlip(p=1.0), ToArray(), Normalize(0.5, 0.5)])
    out = pipeline(HWC)
    expected = (np.transpose(HWC[:, ::-1], (2, 0, 1)).astype(np.float32) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert "ToArray()" in repr(pipeline)
    with pytest.raises(TypeError, match="expected a NumPy array or a Pillow image"):
        ToArray()([[1, 2]])
    with pytest.raises(TypeError, match="dtype int64"):
        ToArray()(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="2 or 3 dimensions"):
        ToArray()(np.zeros(4, np.uint8))
