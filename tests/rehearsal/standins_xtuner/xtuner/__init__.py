"""Stand-in for xtuner 0.2.0 in the CPU rehearsal of notebook 08 (the training process is the GPU boundary).

``python -m xtuner.tools.train CONFIG --work-dir DIR [--deepspeed NAME]`` (and ``xtuner train ...``) checks the
config and what it points at, then lays out a finished run the way XTuner does; ``python -m
xtuner.configs.internvl.v1_5.convert_to_official CONFIG PTH OUT`` writes a model folder without the model's code files,
as XTuner's converter does. Nothing here trains: the real commands are checked against xtuner 0.2.0 by
``make test-full-stack``.
"""

__version__ = "0.2.0 (rehearsal stand-in)"
