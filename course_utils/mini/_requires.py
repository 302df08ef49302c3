"""Imported first by ``course_utils.mini``: in a kernel whose transformers is too old for the mini models (the GPU-lab
environments pin 4.48 / 4.57), raise one ImportError that says which kernel to pick, instead of a deep one."""

from ..env import mini_problem

if problem := mini_problem():
    raise ImportError(problem)
