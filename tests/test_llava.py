"""course_utils.llava against the official LLaVA code paths (restated) and transformers' LLaVA-NeXT."""

import random

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
