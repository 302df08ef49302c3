"""Mini-food: a synthetic dish-photo dataset in FoodieQA's SIVQA schema, for the mini track of notebook 08.

Each dish of ``data.MINI_FOOD_DISHES`` gets its own look (a sauce colour and a topping pattern on a plate); every photo
varies the plate's position and size, the table, the lighting and the topping layout, so a model has to learn the
dish, not memorise pixels. The photos are written as ``<root>/<dish>/<k>.png`` with a ``dishes.csv`` beside them and
turned into SIVQA items by ``sivqa.build_from_folder`` (``foodieqa build``): exactly the path a learner takes with their own photos.
The mini InternVL has never seen any of it (it was trained on coloured shapes).
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import data, sivqa

SAUCES = [(196, 120, 40), (170, 40, 30), (235, 205, 120), (120, 70, 40),
          (240, 235, 220), (90, 130, 60), (200, 90, 20), (150, 100, 160)]  # fmt: skip
PATTERNS = ("dots", "stripes", "noodles", "chunks")


def dish_look(index: int) -> tuple[tuple[int, int, int], str]:
    """(sauce colour, topping pattern) of dish ``index``: unique for the 16 mini-food dishes."""
    return SAUCES[index % len(SAUCES)], PATTERNS[(index // 4) % len(PATTERNS)]


def draw_dish(index: int, rng: np.random.Generator, image_size: int = 96) -> Image.Image:
    """One photo of dish ``index``."""
    s = image_size
    table = tuple(int(v) for v in rng.integers(60, 200, 3))
    img = Image.new("RGB", (s, s), table)
    d = ImageDraw.Draw(img)
    r = s * rng.uniform(0.34, 0.44)
    cx, cy = s / 2 + rng.uniform(-0.08, 0.08) * s, s / 2 + rng.uniform(-0.08, 0.08) * s
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(245, 245, 240), outline=(200, 200, 200))  # the plate
    sauce, pattern = dish_look(index)
    rf = r * 0.78
    d.ellipse([cx - rf, cy - rf, cx + rf, cy + rf], fill=sauce)
    dark = tuple(max(0, c - 90) for c in sauce)
    light = tuple(min(255, c + 70) for c in sauce) if sum(sauce) < 600 else tuple(c - 110 for c in sauce)
    for _ in range(14):
        a, rad = rng.uniform(0, 2 * np.pi), rf * np.sqrt(rng.uniform(0, 0.8))
        x, y = cx + rad * np.cos(a), cy + rad * np.sin(a)
        k = s * 0.035
        if pattern == "dots":
            d.ellipse([x - k, y - k, x + k, y + k], fill=dark)
        elif pattern == "stripes":
            d.line([x - 2.5 * k, y - k, x + 2.5 * k, y + k], fill=light, width=max(1, int(k)))
        elif pattern == "noodles":
            d.arc(
                [x - 3 * k, y - 2 * k, x + 3 * k, y + 2 * k], 0, 200, fill=light, width=max(1, int(k * 0.7))
            )
        else:
            d.rectangle([x - 1.3 * k, y - 1.3 * k, x + 1.3 * k, y + 1.3 * k], fill=dark)
    arr = np.asarray(img, dtype=np.float32) * rng.uniform(0.85, 1.15)  # lighting
    arr += rng.normal(0, 4, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_minifood(root, *, dishes: int = 8, photos_per_dish: int = 12, image_size: int = 96, seed: int = 0):
    """Write ``photos_per_dish`` photos of the first ``dishes`` mini-food dishes under ``root``; return SIVQA items.

    Deterministic for fixed arguments. Also writes ``root/dishes.csv`` (dish, cuisine, region). Returns the items
    ``sivqa.build_from_folder`` makes from the folder (a "which dish", a "which cuisine" and a "which region"
    question per photo, 4 choices each).
    """
    if not 4 <= dishes <= len(data.MINI_FOOD_DISHES):
        raise ValueError(f"dishes must be between 4 and {len(data.MINI_FOOD_DISHES)}, got {dishes}")
    root = Path(root)
    rows = ["dish,cuisine,region"]
    for i, (zh, _, cuisine, region) in enumerate(data.MINI_FOOD_DISHES[:dishes]):
        folder = root / zh
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(photos_per_dish):
            draw_dish(i, np.random.default_rng([seed, i, k]), image_size).save(folder / f"{k:03d}.png")
        rows.append(f"{zh},{cuisine},{region}")
    (root / "dishes.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return sivqa.build_from_folder(root, root / "dishes.csv", seed=seed)
