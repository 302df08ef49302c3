"""Stand-in for ``lmdeploy`` 0.18.0 in the CPU rehearsal of the full track (written for the course, not lmdeploy's code).

It mirrors the surface ``course_utils.infer`` and notebook 07 use: ``GenerationConfig``, ``TurbomindEngineConfig``
and ``PytorchEngineConfig`` with the same checks as lmdeploy's ``messages.py`` (``tests/full_stack/check_lmdeploy.py``
compares them with the real ones on a matrix of values); ``pipeline(...)`` that, like real loading, refuses a model
folder with remote code (``auto_map``) unless ``trust_remote_code=True``; a ``Pipeline`` whose ``chat``, ``__call__``
and ``stream_infer`` run the course's mini InternVL on the CPU and answer with lmdeploy-shaped objects; and
``python -m lmdeploy serve api_server ...`` (the same flags, a subset) serving the OpenAI routes on 127.0.0.1.
"""

from .messages import GenerationConfig, PytorchEngineConfig, Response, TurbomindEngineConfig
from .pipeline import Pipeline, Session, pipeline

__version__ = "0.18.0"

__all__ = [
    "GenerationConfig",
    "Pipeline",
    "PytorchEngineConfig",
    "Response",
    "Session",
    "TurbomindEngineConfig",
    "pipeline",
]
