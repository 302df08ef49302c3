"""The synthetic mini-food dataset: real SIVQA schema, deterministic, distinct dishes, through build-your-own."""

import numpy as np
import pytest
from PIL import Image

from course_utils import data, foodieqa, minifood


def test_every_dish_has_its_own_look():
    looks = [minifood.dish_look(i) for i in range(len(data.MINI_FOOD_DISHES))]
    assert len(set(looks)) == len(looks)


def test_make_minifood_writes_valid_sivqa_and_is_deterministic(tmp_path):
    items = minifood.make_minifood(tmp_path / "a", dishes=5, photos_per_dish=2, image_size=48)
    again = minifood.make_minifood(tmp_path / "b", dishes=5, photos_per_dish=2, image_size=48)
    assert items == again and len(items) == 5 * 2 * 3
    for it in items:
        foodieqa.validate_item(it)
        photo = tmp_path / "a" / it["food_meta"]["food_file"]
        assert Image.open(photo).size == (48, 48)
        assert np.array_equal(
            np.asarray(Image.open(photo)),
            np.asarray(Image.open(tmp_path / "b" / it["food_meta"]["food_file"])),
        )
    names = {it["food_name"] for it in items}
    assert names == {zh for zh, *_ in data.MINI_FOOD_DISHES[:5]}
    assert {it["question_type"] for it in items} == {"food_name", "food_type", "food_location"}
    sample = foodieqa.to_llava(items[0])
    assert sample["conversations"][1]["value"].endswith("，图中的菜是" + items[0]["food_name"])


def test_make_minifood_refuses_too_few_or_too_many_dishes(tmp_path):
    for n in (3, len(data.MINI_FOOD_DISHES) + 1):
        with pytest.raises(ValueError, match="dishes must be between"):
            minifood.make_minifood(tmp_path, dishes=n)
