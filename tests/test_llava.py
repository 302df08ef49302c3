"""course_utils.llava against the official LLaVA code paths (restated) and transformers' LLaVA-NeXT / OneVision."""

import math
import random
import re
import types

import pytest
import torch
from PIL import Image
from transformers.image_processing_utils import select_best_resolution as hf_select_best_resolution

from course_utils import llava, mini


def official_select(original_size, possible_resolutions):
    """llava/mm_utils.py select_best_resolution, restated: sizes are (width, height)."""
    ow, oh = original_size
    best_fit, max_eff, min_waste = None, 0, float("inf")
    for width, height in possible_resolutions:
        scale = min(width / ow, height / oh)
        dw, dh = int(ow * scale), int(oh * scale)
        eff = min(dw * dh, ow * oh)
        waste = width * height - eff
        if eff > max_eff or (eff == max_eff and waste < min_waste):
            max_eff, min_waste, best_fit = eff, waste, (width, height)
    return best_fit


def official_unpad(tensor, original_size):
    """llava_arch.py unpad_image, restated: tensor (C, H, W), original_size (width, height)."""
    ow, oh = original_size
    ch, cw = tensor.shape[1:]
    if ow / oh > cw / ch:
        new_h = int(oh * (cw / ow))
        pad = (ch - new_h) // 2
        return tensor[:, pad : ch - pad, :]
    new_w = int(ow * (ch / oh))
    pad = (cw - new_w) // 2
    return tensor[:, :, pad : cw - pad]


def official_count(image_size, pinpoints=llava.LLAVA_NEXT_PINPOINTS):
    w, h = official_select(image_size, pinpoints)
    cols, rows = w // 336, h // 336
    feats = torch.zeros(1, rows * 24, cols * 24)
    feats = official_unpad(feats, image_size)
    feats = torch.cat([feats, torch.zeros(1, feats.shape[1], 1)], dim=-1)  # image_newline after every row
    return 576 + feats.shape[1] * feats.shape[2]


def many_sizes():
    rng = random.Random(0)
    fixed = [(336, 336), (672, 672), (1920, 1080), (1080, 1920), (4000, 300), (300, 4000), (300, 200), (200, 300), (1, 1),
             (10000, 10000), (672, 336), (336, 672), (1008, 336), (336, 1008), (2, 3000), (3000, 2), (999, 1001)]  # fmt: skip
    return fixed + [(rng.randint(1, 5000), rng.randint(1, 5000)) for _ in range(500)]


def test_projectors_match_llava_builder_and_real_sizes():
    lin = llava.build_projector("linear", 1024, 4096)
    mlp = llava.build_projector("mlp2x_gelu", 1024, 4096)
    assert isinstance(lin, torch.nn.Linear)
    assert list(mlp.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert mlp[1].approximate == "none"  # exact GELU
    assert sum(p.numel() for p in lin.parameters()) == 4_198_400  # 4.2M (LLaVA-1.5, 7B: 1024 → 4096)
    assert sum(p.numel() for p in mlp.parameters()) == 20_979_712  # 20.98M (mlp2x_gelu, 7B)
    with pytest.raises(ValueError, match="mlp2x_gelu"):
        llava.build_projector("qformer", 1, 1)


def test_vit_tokens():
    assert llava.vit_tokens(224, 14) == 256 and llava.vit_tokens(224, 14, cls=True) == 257
    assert llava.vit_tokens(336, 14) == 576 and llava.vit_tokens(336, 14, cls=True) == 577


@pytest.mark.parametrize(
    "pinpoints", [llava.LLAVA_NEXT_PINPOINTS, [[672, 448], [448, 672], [224, 224], [448, 448]]]
)
def test_select_best_resolution_matches_official_and_transformers(pinpoints):
    for size in many_sizes():
        ours = llava.select_best_resolution(size, pinpoints)
        assert ours == official_select(size, pinpoints), size
        # transformers takes (height, width) for both: transpose the inputs and it is the same rule
        h, w = hf_select_best_resolution((size[1], size[0]), [(p[1], p[0]) for p in pinpoints])
        assert (w, h) == ours, size


def test_token_counts_match_the_official_pipeline():
    for size in many_sizes():
        assert llava.anyres_num_tokens(size) == official_count(size), size
    assert max(llava.anyres_num_tokens(s) for s in many_sizes()) == 2928


def test_facts_sheet_numbers():
    assert llava.anyres_num_tokens((672, 672)) == 2928  # not 5 × 576 = 2880
    assert llava.anyres_num_tokens((1920, 1080)) == 1948
    assert llava.anyres_num_tokens((4000, 300)) == 1014
    assert llava.anyres_num_tokens((300, 200)) == 976
    assert (
        llava.anyres_num_tokens((672, 672), merge="spatial")
        == llava.anyres_num_tokens((672, 672), merge="flat")
        == 2880
    )
    assert llava.anyres_grid_shape((1920, 1080), llava.LLAVA_NEXT_PINPOINTS) == (2, 2)
    with pytest.raises(ValueError, match="merge"):
        llava.anyres_num_tokens((10, 10), merge="nope")


@pytest.fixture(scope="module")
def next_processor():
    return mini.build("llava_next")[1]


def processor_count(processor, size):
    ids = processor(images=[Image.new("RGB", size)], text=["<image>"], return_tensors="pt")["input_ids"]
    return int((ids == processor.tokenizer.convert_tokens_to_ids("<image>")).sum())


@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920), (4000, 300), (336, 336), (672, 672), (640, 427), (512, 600),
                                  (1000, 872), (451, 300), (100, 1000), (333, 334)])  # fmt: skip
def test_mini_llava_next_processor_agrees_where_conventions_agree(next_processor, size):
    assert processor_count(next_processor, size) == llava.anyres_num_tokens(size)


def test_the_convention_trap(next_processor):
    """transformers reads pinpoints as (height, width) and rounds the unpadding differently."""
    assert llava.anyres_num_tokens((300, 200)) == 976 and processor_count(next_processor, (300, 200)) == 1464


def official_resize_and_pad(image, target_resolution):
    """llava/mm_utils.py resize_and_pad_image, restated."""
    import math

    ow, oh = image.size
    tw, th = target_resolution
    sw, sh = tw / ow, th / oh
    if sw < sh:
        nw, nh = tw, min(math.ceil(oh * sw), th)
    else:
        nh, nw = th, min(math.ceil(ow * sh), tw)
    out = Image.new("RGB", (tw, th), (0, 0, 0))
    out.paste(image.resize((nw, nh)), ((tw - nw) // 2, (th - nh) // 2))
    return out


@pytest.mark.parametrize("size", [(1920, 1080), (300, 200), (200, 300), (336, 336), (4000, 300), (7, 900)])
def test_resize_and_pad_matches_official(size):
    from course_utils import data

    img = data.sample_photo("coffee").resize(size)
    target = llava.select_best_resolution(size, llava.LLAVA_NEXT_PINPOINTS)
    ours = llava.resize_and_pad(img, target)
    assert ours.size == target and ours.tobytes() == official_resize_and_pad(img, target).tobytes()


def official_expand2square(pil_img, background_color):
    """llava/mm_utils.py expand2square, restated."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    if width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    result = Image.new(pil_img.mode, (height, height), background_color)
    result.paste(pil_img, ((height - width) // 2, 0))
    return result


def test_clip_mean_colour_is_the_official_fill():
    # image_mean in openai/clip-vit-large-patch14-336's preprocessor_config.json
    clip_image_mean = (0.48145466, 0.4578275, 0.40821073)
    assert llava.CLIP_MEAN_RGB == tuple(int(x * 255) for x in clip_image_mean)


@pytest.mark.parametrize(
    "size", [(640, 427), (427, 640), (336, 336), (1920, 1080), (301, 200), (200, 301), (1, 9), (4000, 3)]
)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_expand2square_matches_official(size, mode):
    from course_utils import data

    img = data.sample_photo("coffee").resize(size).convert(mode)
    colour = llava.CLIP_MEAN_RGB if mode == "RGB" else 120
    ours = llava.expand2square(img, colour)
    theirs = official_expand2square(img, colour)
    assert ours.size == theirs.size == (max(size), max(size)) and ours.mode == mode
    assert ours.tobytes() == theirs.tobytes(), size
    if size[0] != size[1]:  # the corners are padding, in the mean colour, and the image is not stretched
        assert llava.expand2square(img.convert("RGB")).getpixel((0, 0)) == llava.CLIP_MEAN_RGB


def test_hd_reconstruction():
    assert max(c * r for c, r in ((w // 224, h // 224) for w, h in llava.LLAVA_HD_PINPOINTS)) == 6
    assert max(max(p) for p in llava.LLAVA_HD_PINPOINTS) == 672
    assert llava.hd_num_tokens((224, 224)) == 256 + 16 * 17 * 1  # 1×1 tile... ties pick the first (1×1)
    assert llava.hd_num_tokens((672, 448)) == 256 + 32 * (48 + 1)


@pytest.mark.parametrize("size", [(1920, 1080), (300, 200), (336, 1008)])
def test_explorer_callback(size):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = llava.anyres_figure(Image.new("RGB", size, (10, 120, 200)))
    assert f"= {llava.anyres_num_tokens(size)} visual tokens" in fig._suptitle.get_text()
    plt.close(fig)


def test_select_features_drops_or_keeps_cls():
    states = tuple(torch.randn(2, 5, 3) for _ in range(3))  # embeddings + 2 layers; token 0 is CLS
    assert torch.equal(llava.select_features(states), states[-2][:, 1:])
    assert torch.equal(llava.select_features(states, -1, "full"), states[-1])
    with pytest.raises(ValueError, match="drop CLS"):
        llava.select_features(states, -2, "patch")


# LLaVA-OneVision (LLaVA-VL/LLaVA-NeXT): the "(1x1),...,(6x6)" grids and the anyres_max_9 token cap


def official_expand(grid_pinpoints, patch_size):
    """LLaVA-VL/LLaVA-NeXT llava/train/train.py (same code in llava/mm_utils.py): the "(AxB)" range syntax, restated."""
    matches = re.findall(r"\((\d+)x(\d+)\)", grid_pinpoints)
    range_start = tuple(map(int, matches[0]))
    range_end = tuple(map(int, matches[-1]))
    grid = [
        (i, j)
        for i in range(range_start[0], range_end[0] + 1)
        for j in range(range_start[1], range_end[1] + 1)
    ]
    return [[dim * patch_size for dim in pair] for pair in grid]


def official_anyres_max_count(image_size, max_num_patches=9, pinpoints="(1x1),...,(6x6)", tile=384, side=27):
    """llava_arch.py's unpad + anyres_max branch, restated on a real tensor: torch's interpolation sets the size."""
    w, h = official_select(image_size, official_expand(pinpoints, tile))
    cols, rows = w // tile, h // tile
    feats = official_unpad(torch.zeros(1, rows * side, cols * side), image_size)  # (C, H, W)
    _, fh, fw = feats.shape
    times = math.sqrt(fh * fw / (max_num_patches * side**2))
    if times > 1.1:
        feats = torch.nn.functional.interpolate(
            feats[None], [int(fh // times), int(fw // times)], mode="bilinear"
        )[0]
    feats = torch.cat([feats, torch.zeros(1, feats.shape[1], 1)], dim=-1)  # image_newline after every row
    return side**2 + feats.shape[1] * feats.shape[2]  # the 729 base tokens come first


def test_onevision_pinpoints_expand_like_the_official_code():
    assert llava.ONEVISION_PINPOINTS == official_expand("(1x1),...,(6x6)", 384)
    assert len(llava.ONEVISION_PINPOINTS) == 36 and llava.ONEVISION_PINPOINTS[0] == [384, 384]
    # scripts/train/README.md: "at most to 2304x2304"
    assert max(max(p) for p in llava.ONEVISION_PINPOINTS) == 2304
    # LLaVA-NeXT 1.6's scripts write a Python literal; a list passes through
    next_string = "[(336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008)]"
    assert llava.expand_grid_pinpoints(next_string, 336) == llava.LLAVA_NEXT_PINPOINTS
    assert llava.expand_grid_pinpoints(llava.LLAVA_NEXT_PINPOINTS, 336) == llava.LLAVA_NEXT_PINPOINTS
    assert llava.expand_grid_pinpoints("(1x1),...,(2x3)", 336) == [[336, 336], [336, 672], [336, 1008],
                                                                   [672, 336], [672, 672], [672, 1008]]  # fmt: skip
    with pytest.raises(ValueError, match="patch_size"):
        llava.expand_grid_pinpoints("(1x1),...,(6x6)", 400)


def test_transformers_onevision_default_grids_are_the_same_list():
    from transformers import LlavaOnevisionImageProcessor

    # the same numbers in the same order; transformers reads each pair as (height, width)
    assert [list(p) for p in LlavaOnevisionImageProcessor().image_grid_pinpoints] == llava.ONEVISION_PINPOINTS


def test_anyres_max_counts_match_the_official_pipeline():
    for size in many_sizes():
        assert llava.anyres_max_num_tokens(size) == official_anyres_max_count(size), size
    for size in many_sizes()[:120]:
        ours = llava.anyres_max_num_tokens(size, image_aspect_ratio="anyres_max_4")
        assert ours == official_anyres_max_count(size, max_num_patches=4), size


def test_anyres_max_shape_rule():
    assert llava.anyres_max_shape((81, 81), 9, 27) == (81, 81)  # exactly 9 tiles' worth: kept
    assert llava.anyres_max_shape((81, 98), 9, 27) == (81, 98)  # times 1.0999…: still kept
    assert llava.anyres_max_shape((81, 108), 9, 27) == (70, 93)  # times 1.1547: shrunk, int(h // times)
    assert llava.anyres_max_shape((162, 162), 9, 27) == (81, 81)  # a 6 × 6 grid: times 2


def test_plain_anyres_is_the_uncapped_count():
    for size in many_sizes()[:200]:
        uncapped = llava.anyres_max_num_tokens(size, image_aspect_ratio="anyres")
        assert uncapped == llava.anyres_num_tokens(
            size, llava.ONEVISION_PINPOINTS, patch_size=384, tokens_per_side=27
        )
        next_count = llava.anyres_max_num_tokens(size, llava.LLAVA_NEXT_PINPOINTS, image_aspect_ratio="anyres",
                                                 patch_size=336, tokens_per_side=24)  # fmt: skip
        assert next_count == llava.anyres_num_tokens(size)
    with pytest.raises(ValueError, match="anyres_max_N"):
        llava.anyres_max_num_tokens((10, 10), image_aspect_ratio="pad")


def test_onevision_numbers_of_notebook_04():
    """docs/LLaVA_OneVision.md: "represented by 729 * (9+1) tokens at most under anyres_max_9": the code gives more."""
    # a 3 × 3 grid, nothing shrunk
    assert llava.anyres_max_num_tokens((1152, 1152)) == 729 + 81 * (81 + 1) == 7371
    assert llava.anyres_max_num_tokens((1150, 1400)) == 729 + 98 * (81 + 1) == 8765  # under the 1.1 slack
    assert llava.anyres_max_num_tokens((1920, 1080)) == 7269  # 5 × 3 grid: 135 × 75 → 108 × 60
    assert llava.anyres_max_num_tokens((1920, 1080), image_aspect_ratio="anyres") == 10929
    largest = max(
        llava.anyres_max_num_tokens((w, h)) for w in range(50, 4001, 50) for h in range(50, 4001, 50)
    )
    assert largest == 8765 > 729 * (9 + 1)


def test_transformers_onevision_count_formula_agrees():
    """transformers' LlavaOnevisionProcessor._get_number_of_features (private: called on a stand-in processor)."""
    from transformers import LlavaOnevisionImageProcessor
    from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor as P

    stand_in = types.SimpleNamespace(
        image_processor=LlavaOnevisionImageProcessor(),
        num_image_tokens=729,
        vision_aspect_ratio="anyres_max_9",
    )
    stand_in._get_unpadded_features = types.MethodType(P._get_unpadded_features, stand_in)
    for w, h in many_sizes()[:300]:
        theirs = P._get_number_of_features(stand_in, h, w, 384, 384)  # (height, width) arguments
        assert theirs == llava.anyres_max_num_tokens((w, h)), (w, h)
