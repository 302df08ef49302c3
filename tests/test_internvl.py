"""course_utils.internvl against the official InternVL code paths and transformers' InternVL/GotOcr2."""

import random

import pytest
import torch
from PIL import Image
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

from course_utils import data, internvl, mini


def official_grid(width, height, min_num=1, max_num=12, image_size=448):
    """The official rule, restated: set → sort by area → first strictly-closer ratio, or the tie rule."""
    ratios = sorted(
        {
            (i, j)
            for n in range(min_num, max_num + 1)
            for i in range(1, n + 1)
            for j in range(1, n + 1)
            if min_num <= i * j <= max_num
        },
        key=lambda r: r[0] * r[1],
    )
    aspect, area = width / height, width * height
    best, best_diff = (1, 1), float("inf")
    for r in ratios:
        d = abs(aspect - r[0] / r[1])
        if d < best_diff:
            best, best_diff = r, d
        elif d == best_diff and area > 0.5 * image_size * image_size * r[0] * r[1]:
            best = r
    return best


def sizes():
    rng = random.Random(0)
    fixed = [(448, 448), (896, 448), (448, 896), (800, 1300), (250, 100), (1, 1), (10000, 10), (10, 10000), (1344, 336),
             (1920, 1080), (1080, 1920), (224, 224), (100, 100), (447, 449), (1000, 872), (640, 427), (512, 600)]  # fmt: skip
    return fixed + [(rng.randint(1, 4000), rng.randint(1, 4000)) for _ in range(400)]


@pytest.mark.parametrize("max_num", [1, 6, 12, 40])
def test_grid_matches_the_official_rule_and_transformers(max_num):
    for w, h in sizes():
        ours = internvl.dynamic_grid(w, h, max_num=max_num)
        assert ours == official_grid(w, h, max_num=max_num), (w, h)
        assert ours == get_optimal_tiled_canvas((h, w), (448, 448), 1, max_num), (
            w,
            h,
        )  # transformers: (h, w) in


def test_facts_sheet_examples():
    assert len(internvl.candidate_grids(1, 12)) == 35
    assert internvl.dynamic_grid(800, 1300) == (2, 3)
    assert internvl.dynamic_grid(250, 100) == (5, 2)  # tiny image, matching ratio: upscaled to 10 tiles
    assert internvl.num_tiles(250, 100) == 11
    assert internvl.num_image_tokens(1) == 256 and internvl.tokens_per_tile() == 256
    assert internvl.num_image_tokens(13) == 3328  # train max: 12 tiles + thumbnail
    assert internvl.num_image_tokens(41) == 10496  # test max: 40 tiles + thumbnail


def test_tie_rule_depends_on_area():
    # a square image ties (1,1), (2,2), (3,3): the larger grid wins only if the image covers over half of it
    assert internvl.dynamic_grid(448, 448) == (1, 1)
    assert internvl.dynamic_grid(700, 700) == (2, 2)
    assert internvl.dynamic_grid(1400, 1400) == (3, 3)


def test_min_num_and_errors():
    assert internvl.dynamic_grid(448, 448, min_num=2, max_num=12) == official_grid(448, 448, min_num=2)
    with pytest.raises(ValueError):
        internvl.candidate_grids(3, 2)
    with pytest.raises(ValueError, match="positive"):
        internvl.dynamic_grid(0, 10)


def official_tiles(image, max_num=12, image_size=448):
    cols, rows = official_grid(*image.size, max_num=max_num, image_size=image_size)
    resized = image.resize((image_size * cols, image_size * rows))
    out = []
    for i in range(cols * rows):
        box = (
            (i % cols) * image_size,
            (i // cols) * image_size,
            (i % cols + 1) * image_size,
            (i // cols + 1) * image_size,
        )
        out.append(resized.crop(box))
    if len(out) != 1:
        out.append(image.resize((image_size, image_size)))
    return out


@pytest.mark.parametrize("name", data.sample_photo_names())
def test_tiles_equal_the_official_crops(name):
    photo = data.sample_photo(name)
    for size in [
        (photo.width, photo.height),
        (photo.width // 3, photo.height),
        (photo.width, photo.height // 4),
    ]:
        img = photo.resize(size)
        ours = internvl.dynamic_preprocess(img, max_num=6, image_size=112)
        ref = official_tiles(img, max_num=6, image_size=112)
        assert len(ours) == len(ref) == internvl.num_tiles(*size, max_num=6, image_size=112)
        for a, b in zip(ours, ref, strict=True):
            assert a.size == (112, 112) and a.tobytes() == b.tobytes()


def test_single_tile_has_no_thumbnail():
    tiles = internvl.dynamic_preprocess(Image.new("RGB", (300, 300)), image_size=448)
    assert len(tiles) == 1
    assert len(internvl.dynamic_preprocess(Image.new("RGB", (900, 300)), use_thumbnail=False)) == 3


def official_pixel_shuffle(x, scale_factor=0.5, ps_version="v2"):
    n, w, h, c = x.size()
    x = x.view(n, w, int(h * scale_factor), int(c / scale_factor))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
    if ps_version != "v1":
        x = x.permute(0, 2, 1, 3).contiguous()
    return x


@pytest.mark.parametrize("shape", [(1, 32, 32, 8), (3, 4, 4, 1), (2, 8, 6, 4), (1, 2, 2, 3), (2, 16, 16, 64)])
def test_pixel_shuffle_matches_official_v1_v2_and_transformers(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
    model, _ = mini.build("internvl", image_size=56)
    for version in ("v1", "v2"):
        ours = internvl.pixel_shuffle(x, 0.5, version)
        assert torch.equal(ours, official_pixel_shuffle(x.clone(), 0.5, version))
        n, h, w, c = shape
        assert ours.shape == ((n, h // 2, w // 2, c * 4) if version == "v2" else (n, w // 2, h // 2, c * 4))
    assert torch.equal(internvl.pixel_shuffle(x), model.model.pixel_shuffle(x, scale_factor=0.5))


def test_pixel_shuffle_merges_2x2_neighbours():
    # label each patch with its (row, col); after v2 shuffle, token (i, j) holds patches rows 2i..2i+1, cols 2j..2j+1
    h = w = 4
    grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1).float()[
        None
    ]  # (1,h,w,2)
    out = internvl.pixel_shuffle(grid, 0.5, "v2")
    for i in range(2):
        for j in range(2):
            patches = {tuple(p) for p in out[0, i, j].view(4, 2).int().tolist()}
            assert patches == {(2 * i + a, 2 * j + b) for a in (0, 1) for b in (0, 1)}
    with pytest.raises(ValueError, match="cannot be pixel-shuffled"):
        internvl.pixel_shuffle(torch.randn(1, 3, 4, 4))


@pytest.mark.parametrize(
    "size", [(448, 448), (1344, 336), (800, 1300), (250, 100), (1000, 872), (640, 427), (100, 1000)]
)
def test_token_count_equals_what_the_mini_processor_inserts(size):
    _, processor = mini.build("internvl", image_size=112)
    per_tile = internvl.tokens_per_tile(image_size=112)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
        add_generation_prompt=True,
    )
    ids = processor(images=[Image.new("RGB", size)], text=[text], return_tensors="pt")["input_ids"]
    tiles = internvl.num_tiles(*size, image_size=112)
    assert (
        int((ids == processor.image_token_id).sum())
        == internvl.num_image_tokens(tiles, image_size=112)
        == tiles * per_tile
    )


def test_mlp1_matches_transformers_projector():
    model, _ = mini.build("internvl", image_size=56)
    cfg = model.config
    ours = internvl.build_mlp1(
        cfg.vision_config.hidden_size, cfg.text_config.hidden_size, cfg.downsample_ratio
    )
    theirs = model.model.multi_modal_projector
    shapes = [tuple(p.shape) for p in ours.parameters()]
    assert shapes == [tuple(p.shape) for p in theirs.parameters()]
    assert list(ours.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]


@pytest.mark.parametrize(
    "size,max_num", [((1200, 500), 12), ((250, 100), 12), ((448, 448), 1), ((300, 1200), 6)]
)
def test_explorer_callback_draws_every_tile(size, max_num):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = internvl.tiling_figure(Image.new("RGB", size, (200, 100, 50)), max_num=max_num)
    tiles = internvl.num_tiles(*size, max_num=max_num)
    assert len(fig.axes) == 1 + tiles
    assert f"= {internvl.num_image_tokens(tiles)} visual tokens" in fig._suptitle.get_text()
    plt.close(fig)


@pytest.mark.parametrize("use_thumbnail", [True, False])
def test_image_token_layout_is_tiles_row_by_row_then_the_thumbnail(use_thumbnail):
    grids = [(c, r) for c in range(1, 9) for r in range(1, 9) if c * r <= 40]
    for cols, rows in grids:
        layout = internvl.image_token_layout(cols, rows, use_thumbnail=use_thumbnail)
        assert layout[0] == ("<img>", 1) and layout[-1] == ("</img>", 1)
        names = [name for name, _ in layout[1:-1]]
        expected = [f"tile {k + 1} (row {k // cols + 1}, col {k % cols + 1})" for k in range(cols * rows)]
        if use_thumbnail and cols * rows > 1:
            expected.append("thumbnail")
        assert names == expected, (cols, rows)
        assert {n for _, n in layout[1:-1]} == {256}
        tiles = len(expected)
        assert sum(n for _, n in layout) == internvl.num_image_tokens(tiles) + 2
    wide, tall = internvl.image_token_layout(2, 1), internvl.image_token_layout(1, 2)
    assert wide != tall  # our labels differ (row 1, col 2 vs row 2, col 1) ...
    assert [n for _, n in wide] == [n for _, n in tall]  # ... the token counts, all the LLM sees, do not
    with pytest.raises(ValueError, match="at least one"):
        internvl.image_token_layout(0, 3)


@pytest.mark.parametrize("size", [(224, 112), (112, 224), (336, 112), (224, 224), (500, 90), (112, 112)])
def test_layout_is_what_transformers_processor_inserts(size):
    """transformers' InternVLProcessor (the class the -hf checkpoints use): one unbroken run of <IMG_CONTEXT>."""
    _, processor = mini.build("internvl", image_size=112)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
        add_generation_prompt=True,
    )
    ids = processor(images=[Image.new("RGB", size)], text=[text], return_tensors="pt")["input_ids"][
        0
    ].tolist()
    start, end = ids.index(processor.start_image_token_id), ids.index(processor.end_image_token_id)
    inside = ids[start + 1 : end]
    cols, rows = internvl.dynamic_grid(*size, image_size=112)
    layout = internvl.image_token_layout(cols, rows, tokens_per_tile=internvl.tokens_per_tile(image_size=112))
    assert set(inside) == {processor.image_token_id}  # no marker between tiles or rows
    assert len(inside) == sum(n for _, n in layout[1:-1])
    assert ids.count(processor.start_image_token_id) == ids.count(processor.end_image_token_id) == 1


def test_a_2x1_and_a_1x2_grid_give_the_same_input_ids():
    _, processor = mini.build("internvl", image_size=112)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
        add_generation_prompt=True,
    )
    wide, tall = (
        processor(images=[Image.new("RGB", s)], text=[text], return_tensors="pt")["input_ids"]
        for s in [(224, 112), (112, 224)]
    )
    assert internvl.dynamic_grid(224, 112, image_size=112) == (2, 1)
    assert internvl.dynamic_grid(112, 224, image_size=112) == (1, 2)
    assert torch.equal(wide, tall)


@pytest.mark.parametrize("max_num", [1, 6, 12, 40])
def test_visual_tokens_against_the_definition(max_num):
    for w, h in sizes():
        n = internvl.num_tiles(w, h, max_num=max_num)
        assert internvl.visual_tokens(w, h, max_num=max_num) == internvl.num_image_tokens(n) == 256 * n
        # every k up to 13 tiles; beyond, a sample (each call chooses the grid again among up to 41 tiles' grids)
        ks = range(n + 1) if n <= 13 else sorted({0, 1, n // 3, n // 2, 2 * n // 3, n - 1, n})
        counts = {k: internvl.visual_tokens(w, h, max_num=max_num, compressed_tiles=k) for k in ks}
        assert counts == {k: 256 * (n - k) + 64 * k for k in ks}, (w, h)
        assert counts[n] * 4 == counts[0]  # every tile compressed: a quarter of InternVL2's count
        assert counts[0] - counts[1] == 192  # each compressed tile saves 192
        if n % 3 == 0:  # two tiles in three compressed: half the tokens
            assert counts[2 * n // 3] * 2 == counts[0]
        for bad in (-1, n + 1):
            with pytest.raises(ValueError, match="compressed_tiles"):
                internvl.visual_tokens(w, h, max_num=max_num, compressed_tiles=bad)


def test_visual_tokens_examples_and_options():
    assert internvl.visual_tokens(1920, 1080) == 9 * 256  # 4×2 grid + thumbnail
    assert internvl.visual_tokens(1920, 1080, compressed_tiles=9) == 9 * 64
    assert internvl.visual_tokens(600, 400) == 7 * 256  # the coffee photo: 3×2 + thumbnail
    assert internvl.visual_tokens(448, 448, compressed_tiles=1) == 64  # one tile, no thumbnail
    assert internvl.visual_tokens(1920, 1080, use_thumbnail=False) == 8 * 256
    assert (
        internvl.visual_tokens(224, 112, image_size=112) == internvl.num_image_tokens(3, image_size=112) == 48
    )
    assert internvl.visual_tokens(224, 112, image_size=112, compressed_tiles=3) == 3 * 4  # (112/14)² / 16
