"""course_utils: the helper package behind the MLLM course notebooks.

One module per concept; notebooks import these modules, nothing here imports a notebook. Heavy or GPU-only
libraries (lmdeploy, xtuner, gradio, peft) are imported lazily inside the functions that need them.
"""

__version__ = "0.1.0"
