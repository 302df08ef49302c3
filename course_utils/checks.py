"""Exercise checkers: "not attempted" for a stub, a helpful failure for a wrong answer, ✅ for a right one.

Pattern used in every notebook::

    def my_info_nce(image_emb, text_emb, temperature):
        raise NotImplementedError  # ✍️ your code here

    checks.check_function(my_info_nce, alignment.info_nce, cases, name="Exercise 1")

A stub (``NotImplementedError``) prints a note and returns ``False``, so "Run all" stays green; a wrong answer
raises ``ExerciseError`` that says which input failed and how; a correct answer prints ✅ and returns ``True``.
Two exercises get checkers of their own, whose messages name the rule a wrong answer breaks: ``check_unpad``
(notebook 04, LLaVA-NeXT's unpadding) and ``check_negative_weights`` (notebook 02, BLIP-2's hard negatives).

Introduced in notebook 00.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


class ExerciseError(AssertionError):
    """A wrong answer to an exercise, with a message that helps find the mistake."""


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)}, dtype {getattr(value, 'dtype', '?')}"
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."


def _as_args(case: Any) -> tuple[tuple, dict]:
    if isinstance(case, Mapping):
        return (), dict(case)
    if isinstance(case, tuple):
        return case, {}
    return (case,), {}


def compare(got: Any, expected: Any, *, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """``None`` when ``got`` matches ``expected``; otherwise a sentence saying what differs."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a course dependency
        torch = None
    if torch is not None and isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {_describe(got)}"
        if got.shape != expected.shape:
            return f"shape {tuple(got.shape)} but expected {tuple(expected.shape)}"
        if expected.dtype == torch.bool or got.dtype == torch.bool:
            if got.dtype != expected.dtype:
                return f"dtype {got.dtype} but expected {expected.dtype}"
            wrong = (got != expected).nonzero()
            return (
                None
                if len(wrong) == 0
                else f"{len(wrong)} entries differ, first at index {tuple(wrong[0].tolist())}"
            )
        if not torch.allclose(got.double(), expected.double(), atol=atol, rtol=rtol):
            diff = (got.double() - expected.double()).abs().max().item()
            return f"values differ (largest difference {diff:.3g})"
        return None
    if isinstance(expected, float) or isinstance(got, float):
        if not isinstance(got, (int, float)):
            return f"expected a number, got {_describe(got)}"
        return (
            None
            if abs(got - expected) <= atol + rtol * abs(expected)
            else f"{got!r} but expected {expected!r}"
        )
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)) and len(got) == len(expected):
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            problem = compare(g, e, atol=atol, rtol=rtol)
            if problem:
                return f"item {i}: {problem}"
        return None
    return None if got == expected else f"{_describe(got)} but expected {_describe(expected)}"


def check_function(
    student: Callable,
    reference: Callable,
    cases: Iterable[Any],
    *,
    name: str = "Exercise",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str | None = None,
) -> bool:
    """Call ``student`` and ``reference`` on each case (a tuple of args, a dict of kwargs, or one arg) and compare."""
    cases = list(cases)
    for i, case in enumerate(cases):
        args, kwargs = _as_args(case)
        try:
            got = student(*args, **kwargs)
        except NotImplementedError:
            print(
                f"⏭  {name}: not attempted yet. Replace the `raise NotImplementedError` and run this cell again."
            )
            return False
        expected = reference(*args, **kwargs)
        problem = compare(got, expected, atol=atol, rtol=rtol)
        if problem:
            inputs = ", ".join(
                [_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()]
            )
            message = (
                f"{name}: wrong answer on test case {i + 1} of {len(cases)} (inputs: {inputs}): {problem}."
            )
            raise ExerciseError(message + (f"\nHint: {hint}" if hint else ""))
    print(f"✅ {name}: correct on all {len(cases)} test cases.")
    return True


def check_value(
    student: Callable[[], Any],
    expected: Any,
    *,
    name: str = "Exercise",
    hint: str | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> bool:
    """Check an exercise whose answer is a value: ``student`` is a zero-argument function returning it."""
    try:
        got = student()
    except NotImplementedError:
        print(
            f"⏭  {name}: not attempted yet. Replace the `raise NotImplementedError` and run this cell again."
        )
        return False
    problem = compare(got, expected, atol=atol, rtol=rtol)
    if problem:
        raise ExerciseError(f"{name}: not quite: {problem}." + (f"\nHint: {hint}" if hint else ""))
    print(f"✅ {name}: correct.")
    return True


def _not_attempted(name: str) -> bool:
    print(f"⏭  {name}: not attempted yet. Replace the `raise NotImplementedError` and run this cell again.")
    return False


def check_unpad(
    student: Callable,
    unpadded_shape: Callable,
    cases: Iterable[tuple[tuple[int, int], tuple[int, int]]],
    *,
    name: str = "Exercise",
) -> bool:
    """Check ``student(features, image_size)``, an ``unpad_image`` (official LLaVA: sizes as (width, height)).

    Each case is ``(image_size, (grid_width, grid_height))``. The features are a (2, grid_height, grid_width) tensor
    whose channels hold each cell's row and column index, so a crop in the wrong place can be named. The expected crop
    has the size ``unpadded_shape`` (the course's tested helper, ``llava.unpadded_shape``) returns, centred.
    Introduced in notebook 04.
    """
    import torch

    cases = list(cases)
    for i, (image_size, (grid_w, grid_h)) in enumerate(cases):
        rows = torch.arange(grid_h).view(-1, 1).expand(grid_h, grid_w)
        cols = torch.arange(grid_w).view(1, -1).expand(grid_h, grid_w)
        features = torch.stack([rows, cols]).float()
        try:
            got = student(features.clone(), image_size)
        except NotImplementedError:
            return _not_attempted(name)
        where = (
            f"{name}: wrong answer on test case {i + 1} of {len(cases)} (image {image_size[0]}×{image_size[1]}, "
            f"feature grid {grid_w} wide × {grid_h} high, features of shape {tuple(features.shape)})"
        )
        if not isinstance(got, torch.Tensor) or got.dim() != 3 or got.shape[0] != 2:
            raise ExerciseError(
                f"{where}: expected a (C, H, W) tensor with the same C = 2, got {_describe(got)}."
            )
        w, h = unpadded_shape(image_size, (grid_w, grid_h))
        got_h, got_w = got.shape[1:]
        if (got_w, got_h) != (w, h):
            if h < grid_h:
                why = "the image is wider than the grid (width / height), so the padding is above and below: remove rows"
            elif w < grid_w:
                why = "the image is taller than the grid (width / height), so the padding is left and right: remove columns"
            else:
                why = "the image's sides, scaled to the grid, fill it: nothing to remove"
            message = f"{where}: you kept {got_h} rows × {got_w} columns, expected {h} × {w}: {why}."
            if (got_w, got_h) == (h, w) and w != h:
                message += " Width and height swapped? image_size is (width, height) as PIL gives it; features are (C, H, W)."
            elif abs(got_h - h) == 1 or abs(got_w - w) == 1:
                message += (
                    " Off by one: the official code removes the same number of rows (or columns), "
                    "(current − new) // 2, from each side, and computes the new side with int() (truncation)."
                )
            raise ExerciseError(message)
        top, left = (grid_h - h) // 2, (grid_w - w) // 2
        if got.numel() == 0:  # an extreme aspect ratio: the official code keeps nothing, and so did you
            continue
        first_row, first_col = int(got[0, 0, 0]), int(got[1, 0, 0])
        if (first_row, first_col) != (top, left):
            raise ExerciseError(
                f"{where}: the size is right, but your crop starts at row {first_row}, column {first_col}; "
                f"the padding is split evenly on both sides, so the kept features start at row {top}, column {left}."
            )
        if not torch.equal(got, features[:, top : top + h, left : left + w]):
            raise ExerciseError(f"{where}: the values changed: unpadding only slices the features.")
    print(f"✅ {name}: correct on all {len(cases)} test cases.")
    return True


def negative_weight_cases(seed: int = 0, n_cases: int = 24) -> list[tuple[Any, Any]]:
    """Random ``(sim, ids)`` cases: square similarities (already divided by a temperature) and per-sample ids with
    repeats, every row keeping at least one candidate of another id. The first case has all ids distinct."""
    import torch

    g = torch.Generator().manual_seed(seed)
    cases = []
    for k in range(n_cases):
        n = int(torch.randint(2, 13, (1,), generator=g))
        scale = (1.0, 3.0, 14.0)[k % 3]  # 14 ≈ a cosine / 0.07
        sim = torch.randn(n, n, generator=g) * scale
        if k == 0:
            ids = torch.arange(n)
        else:
            ids = torch.randint(0, max(2, n // 2 + 1), (n,), generator=g)
            while len(ids.unique()) < 2:
                ids = torch.randint(0, max(2, n // 2 + 1), (n,), generator=g)
        cases.append((sim, ids))
    return cases


def check_negative_weights(
    student: Callable, hard_negative_weights: Callable, *, name: str = "Exercise", cases=None
) -> bool:
    """Check ``student(sim, ids)``: BLIP-2's hard-negative sampling weights when several samples share an id.

    ``hard_negative_weights`` is the course's tested helper (``qformer.hard_negative_weights``, LAVIS with
    ``image_id``) that gives the expected values. Row i must be a probability distribution over the columns j with ``ids[j] != ids[i]``, proportional to
    ``exp(sim[i, j])``; every pair with the same id (the diagonal included) gets 0, as LAVIS does when the batch
    carries ``image_id`` (``blip2_qformer.py``). Failures name the row and the rule broken: row sums, zeros where the
    id is shared, more similar = likelier, the softmax values, ``sim`` left unchanged. Introduced in notebook 02.
    """
    import torch

    cases = negative_weight_cases() if cases is None else list(cases)
    for i, (sim, ids) in enumerate(cases):
        before = sim.clone()
        try:
            got = student(sim, ids)
        except NotImplementedError:
            return _not_attempted(name)
        n = len(ids)
        where = f"{name}: wrong answer on test case {i + 1} of {len(cases)} ({n} × {n} similarities, ids {ids.tolist()})"
        if not torch.equal(sim, before):
            raise ExerciseError(
                f"{where}: your function changed `sim` in place (fill_diagonal_ / masked_fill_ on the input?). "
                "The caller still needs its similarities for the ITC loss: work on a copy."
            )
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (n, n):
            raise ExerciseError(f"{where}: expected an {n} × {n} tensor, got {_describe(got)}.")
        got = got.detach().double()
        expected = hard_negative_weights(sim, ids).double()
        if torch.isnan(got).any():
            raise ExerciseError(f"{where}: the weights contain NaN (a row with every entry at -inf?).")
        if (got < -1e-9).any():
            raise ExerciseError(f"{where}: negative weights; probabilities are ≥ 0.")
        row_sums = got.sum(dim=1)
        if not torch.allclose(row_sums, torch.ones(n, dtype=got.dtype), atol=1e-4):
            r = int((row_sums - 1).abs().argmax())
            message = f"{where}: row {r} sums to {row_sums[r]:.4f}; each row (one text) must be a distribution: sum 1."
            if torch.allclose(got.sum(dim=0), torch.ones(n, dtype=got.dtype), atol=1e-4):
                message += " Your columns sum to 1: normalise over dim=1, the candidates of each row."
            raise ExerciseError(message)
        diag = got.diagonal()
        if (diag > 1e-6).any():
            r = int(diag.argmax())
            raise ExerciseError(
                f"{where}: row {r} gives its own positive (column {r}) probability {diag[r]:.3g}; it must be 0, "
                "the matching image is never a negative."
            )
        same = (ids[:, None] == ids[None, :]) & ~torch.eye(n, dtype=torch.bool)
        if (got[same] > 1e-6).any():
            r, c = (int(x) for x in (same & (got > 1e-6)).nonzero()[0])
            raise ExerciseError(
                f"{where}: row {r} gives column {c} probability {got[r, c]:.3g}, but both have id {int(ids[r])}: "
                "image c shows what text r says, so it is a positive too (a false negative). Every pair with the "
                "same id must get 0."
            )
        allowed = ~(ids[:, None] == ids[None, :])
        for r in range(n):
            cand = allowed[r].nonzero().squeeze(1)
            for a in cand:
                for b in cand:
                    if sim[r, a] > sim[r, b] + 1e-3 and got[r, a] < got[r, b] - 1e-6:
                        raise ExerciseError(
                            f"{where}: in row {r}, column {int(a)} is more similar than column {int(b)} "
                            f"({sim[r, a]:.3f} > {sim[r, b]:.3f}) but gets less weight ({got[r, a]:.3g} < "
                            f"{got[r, b]:.3g}): a harder negative must be likelier."
                        )
        if not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
            raise ExerciseError(
                f"{where}: zeros, sums and ordering are right, but the values differ from softmax(sim) over the "
                f"allowed candidates (largest difference {(got - expected).abs().max():.3g}). Use exp, not sim "
                "itself, and no extra temperature: sim is already divided by it."
            )
    print(f"✅ {name}: correct on all {len(cases)} test cases.")
    return True


def grid_cases(seed: int = 0, n_random: int = 120) -> list[tuple[int, int, int]]:
    """``(width, height, max_num)`` cases for InternVL's grid choice: exact ties (square and 2:1 images of several
    sizes, ratios halfway between two grids), tiny images (250 × 100), extreme aspect ratios, then random sizes."""
    import random

    fixed = [
        (448, 448, 12), (600, 600, 12), (700, 700, 12), (1000, 1000, 12), (1400, 1400, 12), (100, 100, 12),
        (896, 448, 12), (500, 250, 12), (1200, 600, 12), (1800, 900, 12), (448, 896, 12), (600, 1200, 12),
        (250, 100, 12), (100, 250, 12), (50, 20, 12), (1, 1, 12), (3, 1, 12), (800, 1300, 12), (1920, 1080, 12),
        (1080, 1920, 12), (10000, 10, 12), (10, 10000, 12), (4000, 300, 12), (1344, 336, 12),
        (600, 400, 2), (1200, 800, 2), (300, 200, 2), (1000, 1000, 6), (300, 300, 6), (1920, 1080, 6),
        (4000, 400, 40), (1000, 1000, 40), (250, 100, 40), (448, 448, 1), (2000, 100, 1),
    ]  # fmt: skip
    rng = random.Random(seed)
    randoms = [
        (rng.randint(1, 4000), rng.randint(1, 4000), rng.choice((6, 12, 12, 40))) for _ in range(n_random)
    ]
    return fixed + randoms


def check_dynamic_grid(
    student: Callable, dynamic_grid: Callable, cases=None, *, name: str = "Exercise", image_size: int = 448
) -> bool:
    """Check ``student(width, height, max_num)``: the (cols, rows) grid InternVL picks for an image.

    ``dynamic_grid`` is the course's tested helper (``internvl.dynamic_grid``, the official ``find_closest_aspect_ratio``
    rule). Failures name the image size, the expected and the given grid and the rule broken: closest aspect ratio,
    the tile budget, (cols, rows) order, or the tie rule (on an exact tie a later, larger grid wins only when the
    image's area exceeds half of that grid's area). Introduced in notebook 06.
    """
    cases = grid_cases() if cases is None else list(cases)
    for i, (w, h, max_num) in enumerate(cases):
        try:
            got = student(w, h, max_num)
        except NotImplementedError:
            return _not_attempted(name)
        expected = tuple(dynamic_grid(w, h, max_num=max_num, image_size=image_size))
        where = (
            f"{name}: wrong answer on test case {i + 1} of {len(cases)} (image {w}×{h}, max_num={max_num})"
        )
        if (
            not isinstance(got, (tuple, list))
            or len(got) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in got)
        ):
            raise ExerciseError(
                f"{where}: expected a (cols, rows) pair of ints such as {expected}, got {_describe(got)}."
            )
        got = tuple(got)
        if got == expected:
            continue
        (gc, gr), (ec, er) = got, expected
        said = f"{where}: you chose the {gc}×{gr} grid (cols × rows), expected {ec}×{er}"
        aspect, area = w / h, w * h
        got_diff, exp_diff = abs(aspect - gc / gr), abs(aspect - ec / er)
        if gc < 1 or gr < 1 or gc * gr > max_num:
            raise ExerciseError(
                f"{said}: {gc * gr} tiles, but a grid must have 1 to max_num = {max_num} tiles."
            )
        if got == (er, ec):
            raise ExerciseError(
                f"{said}: cols and rows swapped? The image's ratio is width / height = {aspect:.3g}; a grid of "
                "cols × rows tiles has ratio cols / rows, and the answer is (cols, rows) like PIL's (width, height)."
            )
        if got_diff > exp_diff:
            raise ExerciseError(
                f"{said}: the image's ratio is {w}/{h} = {aspect:.4g}; yours is {gc}/{gr} = {gc / gr:.4g} "
                f"(off by {got_diff:.4g}), but {ec}/{er} = {ec / er:.4g} is closer (off by {exp_diff:.4g}). "
                "The closest aspect ratio wins; only an exact tie is decided by area."
            )
        half = 0.5 * image_size**2 * ec * er
        rule = (
            f"Both grids are exactly as close to the image's ratio {aspect:.4g}: a tie. Walking the grids from fewest "
            "to most tiles, a later (larger) tied grid replaces the current one only when the image's area exceeds "
            f"half of that grid's area: area > 0.5 · {image_size}² · cols · rows."
        )
        if gc * gr < ec * er:
            raise ExerciseError(
                f"{said}. {rule} Here {w}·{h} = {area:,} > 0.5 · {image_size}² · {ec}·{er} = {half:,.0f}, so the "
                f"larger {ec}×{er} wins. (Keeping the first closest grid and never replacing it misses this.)"
            )
        half_got = 0.5 * image_size**2 * gc * gr
        if gc * gr == ec * er or area > half_got:
            raise ExerciseError(
                f"{said}. {rule} Walk the grids in the order internvl.candidate_grids gives them (by tile count)."
            )
        raise ExerciseError(
            f"{said}. {rule} For your {gc}×{gr}: {w}·{h} = {area:,} ≤ 0.5 · {image_size}² · {gc}·{gr} = "
            f"{half_got:,.0f}, so it must not replace the smaller grid: a small image is not blown up to more tiles."
        )
    print(f"✅ {name}: correct on all {len(cases)} test cases.")
    return True
