"""Exercise checkers: "not attempted" for a stub, a helpful failure for a wrong answer, ✅ for a right one.

Pattern used in every notebook::

    def my_info_nce(image_emb, text_emb, temperature):
        raise NotImplementedError  # ✍️ your code here

    checks.check_function(my_info_nce, alignment.info_nce, cases, name="Exercise 1")

A stub (``NotImplementedError``) prints a note and returns ``False``, so "Run all" stays green; a wrong answer
raises ``ExerciseError`` that says which input failed and how; a correct answer prints ✅ and returns ``True``.

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
