import numpy as np
import pytest

from course_utils import data


def test_all_combos_and_captions():
    combos = data.all_combos()
    assert len(combos) == 48 == len(set(combos))
    items = data.make_shapes(48, image_size=32)
    assert {it.caption for it in items} == {f"a {s} {c} {h}" for c, h, s in combos}


def test_shapes_are_deterministic():
    a = data.make_shapes(6, image_size=48, seed=3)
    b = data.make_shapes(6, image_size=48, seed=3)
    c = data.make_shapes(6, image_size=48, seed=4)
    for x, y in zip(a, b, strict=True):
        assert x.combo == y.combo and x.bbox == y.bbox
        assert np.array_equal(np.asarray(x.image), np.asarray(y.image))
    assert any(
        not np.array_equal(np.asarray(x.image), np.asarray(z.image)) for x, z in zip(a, c, strict=True)
    )
    # item i depends only on (seed, i): a longer list starts with the same items
    longer = data.make_shapes(10, image_size=48, seed=3)
    assert np.array_equal(np.asarray(longer[5].image), np.asarray(a[5].image))


def test_shape_pixels_match_their_labels():
    for item in data.make_shapes(24, image_size=64, seed=1):
        arr = np.asarray(item.image).astype(int)
        x0, y0, x1, y1 = (int(v * 64) for v in item.bbox)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        target = np.array(data.COLOURS[item.colour])
        assert np.abs(arr[cy, cx] - target).max() < 40, item
        assert 0 <= item.bbox[0] < item.bbox[2] <= 1 and 0 <= item.bbox[1] < item.bbox[3] <= 1
        area = (item.bbox[2] - item.bbox[0]) * (item.bbox[3] - item.bbox[1])
        assert (area > 0.15) == (item.size == "big")


def test_qa_pairs():
    item = data.make_shapes(1)[0]
    qa = dict(item.qa())
    assert qa["what colour is the shape?"] == item.colour
    assert qa["describe the image."] == item.caption


def test_split_combos_holds_out_pairs_but_not_words():
    train, test = data.split_combos(held_out_pairs=4, seed=0)
    assert len(test) == 8 and len(train) == 40
    assert not set(train) & set(test)
    assert {c for c, _, _ in train} == set(data.COLOURS)
    assert {s for _, s, _ in train} == set(data.SHAPES)


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="unknown combo"):
        data.draw_shape("pink", "circle", "small")
    with pytest.raises(ValueError, match="empty"):
        data.make_shapes(2, combos=[])
    with pytest.raises(KeyError, match="choose one of"):
        data.sample_photo("lena")


def test_sample_photos_are_real_rgb_images():
    photos = data.sample_photos()
    assert set(photos) == set(data.sample_photo_names())
    for name, img in photos.items():
        assert img.mode == "RGB" and min(img.size) >= 256, name
    assert data.sample_photo("grace_hopper").size == (512, 600)
    # callers get a copy they may draw on
    a = data.sample_photo("coffee")
    a.paste((0, 0, 0), (0, 0, 10, 10))
    assert data.sample_photo("coffee").getpixel((0, 0)) != (0, 0, 0)
