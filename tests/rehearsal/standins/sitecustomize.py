"""Stand-ins at the GPU boundary for the CPU rehearsal of the full track (active only with MLLM_COURSE_REHEARSAL=1).

Python imports this module at start-up when its folder is on PYTHONPATH. It makes ``course_utils.env`` see a GPU
(so the notebooks take their full-track branches) and makes ``.cuda()`` a no-op (the model cards' code moves models and
tensors with it). Everything else runs for real on the CPU; ``lmdeploy`` is the stand-in package beside this file.
"""

import os

if os.environ.get("MLLM_COURSE_REHEARSAL") == "1":
    import torch

    from course_utils import env as _env

    _env.cuda_info = lambda: ("rehearsal: CPU standing in for an A100", 40.0)
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
