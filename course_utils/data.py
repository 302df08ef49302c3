"""Offline data: real sample photos that installed packages ship, and a synthetic "shapes" world.

Nothing here downloads anything. The photos come from scikit-image's and matplotlib's bundled sample data;
the shapes are drawn with PIL from a seed, so the same seed always gives the same pixels.

The shapes world is what the mini models learn: one coloured shape per image, with a caption
("a small red circle"), simple questions with one-word answers, and a bounding box. 6 colours × 4 shapes ×
2 sizes = 48 distinct captions; ``split_combos`` holds some colour–shape pairs out to test compositional
generalisation (notebook 01).

Introduced in notebook 00; used by every notebook with a mini track.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

# --------------------------------------------------------------------------------------------------------------
# Real photos (all bundled with installed packages; see README › Data and licences)
# --------------------------------------------------------------------------------------------------------------
# name -> (package, loader name, short description)
SAMPLE_PHOTOS: dict[str, tuple[str, str, str]] = {
    "astronaut": ("skimage", "astronaut", "astronaut Eileen Collins (NASA), 512×512"),
    "coffee": ("skimage", "coffee", "a cup of coffee (Rachel Michetti), 600×400"),
    "chelsea": ("skimage", "chelsea", "Chelsea the cat (Stéfan van der Walt), 451×300"),
    "rocket": ("skimage", "rocket", "a SpaceX Falcon 9 launch (public domain), 640×427"),
    "hubble": ("skimage", "hubble_deep_field", "Hubble eXtreme Deep Field (NASA), 1000×872"),
    "grace_hopper": ("matplotlib", "grace_hopper.jpg", "Rear Admiral Grace Hopper (US Navy), 512×600"),
}


def sample_photo_names() -> list[str]:
    """Names accepted by ``sample_photo``."""
    return list(SAMPLE_PHOTOS)


@cache
def _load_photo(name: str) -> Image.Image:
    if name not in SAMPLE_PHOTOS:
        raise KeyError(f"unknown sample photo {name!r}; choose one of {', '.join(SAMPLE_PHOTOS)}")
    package, loader, _ = SAMPLE_PHOTOS[name]
    if package == "skimage":
        import skimage.data

        array = getattr(skimage.data, loader)()
        return Image.fromarray(np.asarray(array)).convert("RGB")
    from matplotlib import cbook

    with cbook.get_sample_data(loader) as fh:
        return Image.open(fh).convert("RGB")


def sample_photo(name: str) -> Image.Image:
    """A real RGB photo by name (a fresh copy each call, so callers may draw on it)."""
    return _load_photo(name).copy()


def sample_photos() -> dict[str, Image.Image]:
    """All bundled photos, by name."""
    return {name: sample_photo(name) for name in SAMPLE_PHOTOS}


# --------------------------------------------------------------------------------------------------------------
# The shapes world
# --------------------------------------------------------------------------------------------------------------
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 119, 220),
    "yellow": (235, 200, 20),
    "purple": (148, 80, 189),
    "orange": (255, 127, 14),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZES: tuple[str, ...] = ("small", "big")
# Radius of the shape as a fraction of the image side, per size word.
_RADIUS = {"small": (0.16, 0.21), "big": (0.30, 0.36)}

QUESTIONS: dict[str, str] = {
    "colour": "what colour is the shape?",
    "shape": "what shape is it?",
    "size": "is the shape big or small?",
    "caption": "describe the image.",
}

Combo = tuple[str, str, str]  # (colour, shape, size)


@dataclass(frozen=True)
class ShapeItem:
    """One synthetic image with everything a model could be asked about it."""

    image: Image.Image
    colour: str
    shape: str
    size: str
    bbox: tuple[float, float, float, float]  # (x0, y0, x1, y1), normalised to [0, 1]

    @property
    def caption(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"

    @property
    def combo(self) -> Combo:
        return (self.colour, self.shape, self.size)

    def qa(self) -> list[tuple[str, str]]:
        """(question, answer) pairs: colour, shape, size and a one-sentence caption."""
        answers = {"colour": self.colour, "shape": self.shape, "size": self.size, "caption": self.caption}
        return [(QUESTIONS[key], answers[key]) for key in QUESTIONS]


def all_combos() -> list[Combo]:
    """Every (colour, shape, size): 6 × 4 × 2 = 48."""
    return list(itertools.product(COLOURS, SHAPES, SIZES))


def split_combos(held_out_pairs: int = 4, seed: int = 0) -> tuple[list[Combo], list[Combo]]:
    """Hold out whole colour–shape pairs (both sizes) for a compositional-generalisation test.

    Every colour and every shape still appears in training; only some *pairings* are never seen.
    """
    rng = np.random.default_rng(seed)
    pairs = list(itertools.product(COLOURS, SHAPES))
    colours_seen: set[str] = set()
    shapes_seen: set[str] = set()
    held: list[tuple[str, str]] = []
    for idx in rng.permutation(len(pairs)):
        colour, shape = pairs[idx]
        if len(held) < held_out_pairs and colour not in colours_seen and shape not in shapes_seen:
            held.append((colour, shape))
            colours_seen.add(colour)
            shapes_seen.add(shape)
    train = [c for c in all_combos() if (c[0], c[1]) not in held]
    test = [c for c in all_combos() if (c[0], c[1]) in held]
    return train, test


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        s = r / math.sqrt(2) * 1.15
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return [
            (cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)
        ]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    raise ValueError(f"unknown shape {shape!r}")


def draw_shape(
    colour: str, shape: str, size: str, *, image_size: int = 64, rng: np.random.Generator | None = None
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """Draw one shape on a softly tinted background; returns (image, normalised bbox)."""
    if colour not in COLOURS or shape not in SHAPES or size not in SIZES:
        raise ValueError(f"unknown combo {(colour, shape, size)}; see data.COLOURS, data.SHAPES, data.SIZES")
    rng = rng or np.random.default_rng(0)
    scale = 4  # draw large, then downsample: smooth edges at any size
    side = image_size * scale
    bg = tuple(int(v) for v in rng.integers(225, 250, size=3))
    image = Image.new("RGB", (side, side), bg)
    draw = ImageDraw.Draw(image)
    r = rng.uniform(*_RADIUS[size]) * side
    cx, cy = rng.uniform(r * 1.05, side - r * 1.05, size=2)
    fill = tuple(int(np.clip(v + rng.integers(-12, 13), 0, 255)) for v in COLOURS[colour])
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        box = (cx - r, cy - r, cx + r, cy + r)
    else:
        pts = _polygon(shape, cx, cy, r)
        draw.polygon(pts, fill=fill)
        xs, ys = zip(*pts, strict=True)
        box = (min(xs), min(ys), max(xs), max(ys))
    image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return image, tuple(float(np.clip(v / side, 0.0, 1.0)) for v in box)


def make_shapes(
    n: int, *, image_size: int = 64, seed: int = 0, combos: list[Combo] | None = None
) -> list[ShapeItem]:
    """``n`` shape images, cycling through ``combos`` (default: all 48) in a seeded random order.

    Deterministic: item ``i`` depends only on ``(seed, i)``, the combo list and ``image_size``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    combos = list(combos) if combos is not None else all_combos()
    if not combos:
        raise ValueError("combos is empty: nothing to draw")
    order = np.random.default_rng(seed).permutation(len(combos))
    items = []
    for i in range(n):
        colour, shape, size = combos[order[i % len(combos)]]
        rng = np.random.default_rng([seed, i])
        image, bbox = draw_shape(colour, shape, size, image_size=image_size, rng=rng)
        items.append(ShapeItem(image=image, colour=colour, shape=shape, size=size, bbox=bbox))
    return items


class CaptionSampler:
    """Batches of *distinct* captions with one random image each, so no in-batch "negative" is secretly a positive.

    ``owner[i]`` is the caption index of image ``i``. Used by every contrastive loop of the course (notebooks 01, 02
    and the mini InternVL's ViT pretraining).
    """

    def __init__(self, owner):
        import torch

        owner = torch.as_tensor(owner)
        n = int(owner.max()) + 1 if len(owner) else 0
        self.groups = [torch.nonzero(owner == c).squeeze(1) for c in range(n)]
        self.captions = torch.tensor([c for c, group in enumerate(self.groups) if len(group)])

    def sample(self, batch_size: int, generator):
        """(caption indices, image indices) of one batch of at most ``batch_size`` distinct captions."""
        import torch

        chosen = self.captions[torch.randperm(len(self.captions), generator=generator)[:batch_size]]
        picks = [
            self.groups[c][torch.randint(len(self.groups[c]), (1,), generator=generator)][0] for c in chosen
        ]
        return chosen, torch.stack(picks)


def shapes_sentences() -> list[str]:
    """Every caption, question and answer of the shapes world (for the offline tokenizer)."""
    out = list(QUESTIONS.values())
    out += [f"a {size} {colour} {shape}" for colour, shape, size in all_combos()]
    out += list(COLOURS) + list(SHAPES) + list(SIZES)
    return out


# --------------------------------------------------------------------------------------------------------------
# Mini-food vocabulary: dishes the mini InternVL has never seen, for the LoRA lab (notebook 08).
# The tokenizer learns these words from the start (whole-word tokens), so fine-tuning can teach them.
# --------------------------------------------------------------------------------------------------------------
# (Chinese name, English name, cuisine, region)
MINI_FOOD_DISHES: tuple[tuple[str, str, str, str], ...] = (
    ("锅包肉", "guo bao rou", "东北菜", "黑龙江"),
    ("宫保鸡丁", "kung pao chicken", "川菜", "四川"),
    ("麻婆豆腐", "mapo tofu", "川菜", "四川"),
    ("北京烤鸭", "peking duck", "京菜", "北京"),
    ("小笼包", "xiao long bao", "沪菜", "上海"),
    ("白切鸡", "white cut chicken", "粤菜", "广东"),
    ("叉烧", "char siu", "粤菜", "广东"),
    ("东坡肉", "dongpo pork", "浙菜", "浙江"),
    ("西湖醋鱼", "west lake fish", "浙菜", "浙江"),
    ("剁椒鱼头", "chopped chili fish head", "湘菜", "湖南"),
    ("糖醋里脊", "sweet and sour pork", "鲁菜", "山东"),
    ("佛跳墙", "buddha jumps over the wall", "闽菜", "福建"),
    ("松鼠鳜鱼", "squirrel fish", "苏菜", "江苏"),
    ("热干面", "hot dry noodles", "鄂菜", "湖北"),
    ("兰州拉面", "lanzhou noodles", "西北菜", "甘肃"),
    ("羊肉泡馍", "lamb paomo", "西北菜", "陕西"),
)

# The original InternVL2 lab's training target (its process_food.py) joins the correct choice and the dish name with
# this phrase (defined with FoodieQA's schema).
from .sivqa import ANSWER_PHRASE  # noqa: E402, F401
