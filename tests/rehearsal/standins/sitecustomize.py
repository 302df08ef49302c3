"""Stand-ins at the GPU boundary for the CPU rehearsal of the full track (active only with MLLM_COURSE_REHEARSAL=1).

Python imports this module at start-up when its folder is on PYTHONPATH. The rehearsal has no GPU, so it states one
and derives what each process would see from the artefacts, as ``doctor`` does: ``MLLM_COURSE_REHEARSAL_DRIVER`` is
the CUDA version of the stated driver (the tree's ``nvidia-smi`` prints it; InternStudio's Cuda12.2 image: 12.2), and
``MLLM_COURSE_REHEARSAL_TORCH_CUDA`` the CUDA build of the torch this process stands for (read from the pins of its
environment file by ``internstudio.py``: 13.0 for the course kernel's PyPI torch 2.13, 12.8 and 12.1 for the lab
environments' ``+cu128`` / ``+cu121``). ``torch.version.cuda`` reports that build, and ``course_utils.env`` sees a GPU
only when ``cuda_builds.build_problem`` says the build runs on the driver. ``.cuda()`` is a no-op (the model cards'
code moves models and tensors with it). Everything else runs for real on the CPU; ``lmdeploy`` is the stand-in package
beside this file.
"""

import os

if os.environ.get("MLLM_COURSE_REHEARSAL") == "1":
    import torch

    from course_utils import cuda_builds
    from course_utils import env as _env

    _build = os.environ.get("MLLM_COURSE_REHEARSAL_TORCH_CUDA")
    if _build is not None:
        torch.version.cuda = _build or None
    _driver = tuple(int(x) for x in os.environ.get("MLLM_COURSE_REHEARSAL_DRIVER", "12.2").split(".")[:2])
    if cuda_builds.build_problem(torch.version.cuda or "", _driver) is None:
        _env.cuda_info = lambda: ("rehearsal: CPU standing in for an A100", 40.0)
    else:
        _env.cuda_info = lambda: None  # this build cannot start on the stated driver
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
