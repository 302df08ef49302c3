import pytest
import torch

from course_utils import checks, qformer


def reference(x, scale=2.0):
    return x * scale


def test_stub_is_not_attempted(capsys):
    def stub(x, scale=2.0):
        raise NotImplementedError

    assert checks.check_function(stub, reference, [torch.ones(2)], name="Exercise 1") is False
    assert "not attempted" in capsys.readouterr().out


def test_correct_answer_passes(capsys):
    cases = [torch.randn(3), (torch.randn(2, 2), 3.0), {"x": torch.randn(4), "scale": -1.0}]
    assert checks.check_function(lambda x, scale=2.0: scale * x, reference, cases, name="Ex")
    assert "correct on all 3" in capsys.readouterr().out


def test_wrong_answer_says_what_and_where():
    with pytest.raises(checks.ExerciseError, match=r"test case 2 of 2.*largest difference") as err:
        checks.check_function(
            lambda x, scale=2.0: x * 2.0,
            reference,
            [(torch.ones(2), 2.0), (torch.ones(2), 3.0)],
            hint="use scale",
        )
    assert "Hint: use scale" in str(err.value)
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_function(lambda x, scale=2.0: x.sum(), reference, [torch.ones(2)])


def test_bool_masks_and_values(capsys):
    mask = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    assert checks.compare(mask, mask) is None
    assert "differ" in checks.compare(~mask, mask)
    assert "dtype" in checks.compare(mask.int(), mask)
    assert checks.check_value(lambda: 48, 48, name="count")
    with pytest.raises(checks.ExerciseError, match="47 but expected 48"):
        checks.check_value(lambda: 47, 48)
    assert checks.compare([1.0, 2.0], (1.0, 2.0 + 1e-9)) is None
    assert checks.check_value(lambda: (_ for _ in ()).throw(NotImplementedError), 1) is False


# ---- notebook 04: unpad_image ----------------------------------------------------------------------------------


def official_unpad(tensor, original_size):
    """llava_arch.py unpad_image, restated: tensor (C, H, W), original_size (width, height), int() truncation."""
    ow, oh = original_size
    ch, cw = tensor.shape[1:]
    if ow / oh > cw / ch:
        pad = (ch - int(oh * (cw / ow))) // 2
        return tensor[:, pad : ch - pad, :]
    pad = (cw - int(ow * (ch / oh))) // 2
    return tensor[:, :, pad : cw - pad]


def unpad_cases():
    from course_utils import llava

    sizes = [(1920, 1080), (1080, 1920), (336, 336), (300, 200), (200, 300), (4000, 300), (1, 1), (999, 1001), (5, 2507)]  # fmt: skip
    return [(s, tuple(24 * k for k in llava.anyres_grid_shape(s, llava.LLAVA_NEXT_PINPOINTS))) for s in sizes]


def test_unpad_checker_accepts_the_official_code_and_names_each_mistake(capsys):
    from course_utils import llava

    def check(fn):
        return checks.check_unpad(fn, llava.unpadded_shape, unpad_cases(), name="Ex")

    def stub(features, image_size):
        raise NotImplementedError

    assert check(stub) is False and "not attempted" in capsys.readouterr().out
    assert check(official_unpad) and "correct on all 9" in capsys.readouterr().out

    def new_side_only(t, size):  # keeps exactly int(new) rows: one too few when the difference is odd
        (ow, oh), (ch, cw) = size, t.shape[1:]
        if ow / oh > cw / ch:
            new = int(oh * cw / ow)
            return t[:, (ch - new) // 2 : (ch - new) // 2 + new]
        new = int(ow * ch / oh)
        return t[:, :, (cw - new) // 2 : (cw - new) // 2 + new]

    with pytest.raises(checks.ExerciseError, match="Off by one"):
        check(new_side_only)
    with pytest.raises(checks.ExerciseError, match="swapped"):
        check(lambda t, size: official_unpad(t, size[::-1]))
    with pytest.raises(checks.ExerciseError, match="start at row 10"):
        check(lambda t, size: t[:, : official_unpad(t, size).shape[1], : official_unpad(t, size).shape[2]])
    with pytest.raises(checks.ExerciseError, match="same C"):
        check(lambda t, size: official_unpad(t, size)[0])


# ---- notebook 02: hard-negative weights with shared ids ---------------------------------------------------------


def lavis_weights(sim, ids):
    """blip2_qformer.py with image_id, restated: mask same-id pairs with -10000, then softmax per row."""
    sim = sim.clone()
    sim.masked_fill_(torch.eq(ids.view(-1, 1), ids.view(1, -1)), -10000)
    return torch.softmax(sim, dim=1)


def test_negative_weight_reference_is_lavis_and_qformer_on_distinct_ids():
    for sim, ids in checks.negative_weight_cases():
        ref = qformer.hard_negative_weights(sim, ids)
        assert torch.allclose(ref.float(), lavis_weights(sim, ids), atol=1e-6)
        assert torch.allclose(ref.sum(1), torch.ones(len(ids), dtype=ref.dtype))
    sim, ids = checks.negative_weight_cases()[0]
    assert torch.equal(ids, torch.arange(len(ids)))  # the first case is the notebook's setting: all distinct
    ref = qformer.hard_negative_weights(sim, ids)
    assert torch.allclose(ref.float(), qformer.hard_negative_weights(sim))


def test_negative_weights_checker_names_each_mistake(capsys):
    def stub(sim, ids):
        raise NotImplementedError

    assert checks.check_negative_weights(stub, qformer.hard_negative_weights, name="Ex") is False
    assert "not attempted" in capsys.readouterr().out
    assert checks.check_negative_weights(lavis_weights, qformer.hard_negative_weights, name="Ex")
    assert "correct on all 24" in capsys.readouterr().out

    def in_place(sim, ids):
        return sim.masked_fill_(ids[:, None] == ids[None, :], -1e4).softmax(1)

    wrong = {
        "in place": in_place,
        "Every pair with the same id": lambda sim, ids: sim.clone().fill_diagonal_(-1e4).softmax(1),
        "its own positive": lambda sim, ids: sim.softmax(1),
        "normalise over dim=1": lambda sim, ids: lavis_weights(sim.T, ids).T,
        "harder negative must be likelier": lambda sim, ids: lavis_weights(-sim, ids),
        "values differ": lambda sim, ids: lavis_weights(sim / 2, ids),
        "sums to": lambda sim, ids: lavis_weights(sim, ids) * 2,
        "expected an": lambda sim, ids: lavis_weights(sim, ids)[:, :-1],
    }
    for message, fn in wrong.items():
        with pytest.raises(checks.ExerciseError, match=message):
            checks.check_negative_weights(fn, qformer.hard_negative_weights)


# ---- notebook 06: InternVL's grid choice ------------------------------------------------------------------------


def test_grid_cases_cover_ties_tiny_and_extreme_images():
    from course_utils import internvl

    cases = checks.grid_cases()
    assert len(cases) > 100 and (250, 100, 12) in cases
    assert internvl.dynamic_grid(250, 100) == (5, 2)
    ratios = {w / h for w, h, _ in cases}
    assert max(ratios) >= 1000 and min(ratios) <= 1e-3  # extreme aspect ratios both ways

    def first_closest(w, h, max_num):  # no tie rule: the first closest grid always stays
        grids = internvl.candidate_grids(1, max_num)
        return min(grids, key=lambda g: abs(w / h - g[0] / g[1]))

    ties = [c for c in cases if first_closest(*c) != internvl.dynamic_grid(c[0], c[1], max_num=c[2])]
    assert len(ties) >= 5, ties  # the tie rule decides several cases


def test_grid_checker_names_each_mistake(capsys):
    from course_utils import internvl

    def check(fn):
        return checks.check_dynamic_grid(fn, internvl.dynamic_grid, name="Ex")

    def stub(width, height, max_num=12):
        raise NotImplementedError

    assert check(stub) is False and "not attempted" in capsys.readouterr().out
    assert check(lambda w, h, max_num=12: internvl.dynamic_grid(w, h, max_num=max_num))
    assert f"correct on all {len(checks.grid_cases())}" in capsys.readouterr().out

    def tie_rule(later_wins):
        def grid(w, h, max_num=12):
            best, best_diff = (1, 1), float("inf")
            for c, r in internvl.candidate_grids(1, max_num):
                diff = abs(w / h - c / r)
                if diff < best_diff or (diff == best_diff and later_wins):
                    best, best_diff = (c, r), diff
            return best

        return grid

    with pytest.raises(checks.ExerciseError, match=r"image 700×700.*chose the 1×1 grid.*expected 2×2.*tie"):
        check(tie_rule(later_wins=False))
    with pytest.raises(
        checks.ExerciseError, match=r"image 448×448.*chose the 3×3 grid.*expected 1×1.*must not replace"
    ):
        check(tie_rule(later_wins=True))
    with pytest.raises(checks.ExerciseError, match=r"image 896×448.*swapped"):
        check(lambda w, h, max_num=12: internvl.dynamic_grid(h, w, max_num=max_num))
    with pytest.raises(checks.ExerciseError, match=r"tiles, but a grid must have 1 to max_num = 12"):
        check(lambda w, h, max_num=12: internvl.dynamic_grid(w, h, max_num=40))
    with pytest.raises(checks.ExerciseError, match=r"image 448×448.*yours is 1/2.*is closer"):
        check(lambda w, h, max_num=12: (1, 2))
    with pytest.raises(checks.ExerciseError, match="pair of ints"):
        check(lambda w, h, max_num=12: [float(v) for v in internvl.dynamic_grid(w, h, max_num=max_num)])
