"""Deploying efficiently (notebook 09): the KV cache, its int8/int4 quantization, W4A16 weights (RTN and AWQ),
batching — each written from scratch on the mini InternVL — and LMDeploy's own versions for InternVL2-2B.

    from course_utils.deploy import kvcache, quant, batching   # mini track, any CPU
    from course_utils.deploy import engines                    # full track: lmdeploy lite / quant_policy / serving

The mini-track modules import ``course_utils.mini`` only when a function needs it, so ``engines`` also imports in the
GPU-lab kernel, whose transformers is too old for the mini models.
"""
