# The course's XTuner config (xtuner 0.2.0): LoRA fine-tune of InternVL2-2B on food VQA in XTuner's LLaVA format.
#
#   xtuner train configs/xtuner/internvl_v2_internlm2_2b_lora_finetune_food.py --deepspeed deepspeed_zero2
# (`xtuner train` re-runs `python` from PATH: activate the xtuner environment first, or run what it runs with the
#  environment's python by path: /path/to/env/bin/python -m xtuner.tools.train CONFIG --deepspeed deepspeed_zero2)
#
# The paths below are InternStudio's. Elsewhere (or for your own photos), write a copy with your values:
#   from course_utils import xtuner_run
#   xtuner_run.configure("my_food.py", path=MODEL_DIR, data_root=IMAGES_DIR, data_path=TRAIN_JSON)
# The settings are the original InternVL2 lab's (batch 4 x accumulation 2, 10 epochs, lr 3e-5, LoRA r=128); notebook 08 explains them.
from mmengine.hooks import CheckpointHook, DistSamplerSeedHook, IterTimerHook, LoggerHook, ParamSchedulerHook
from mmengine.optim import AmpOptimWrapper, CosineAnnealingLR, LinearLR
from peft import LoraConfig
from torch.optim import AdamW
from transformers import AutoTokenizer
from xtuner.dataset import InternVL_V1_5_Dataset
from xtuner.dataset.collate_fns import default_collate_fn
from xtuner.dataset.samplers import LengthGroupedSampler
from xtuner.engine.hooks import DatasetInfoHook
from xtuner.engine.runner import TrainLoop
from xtuner.model import InternVL_V1_5
from xtuner.utils import PROMPT_TEMPLATE

# ---- what a learner may change -------------------------------------------------------------------------------
# Plain values only: mmengine parses this file in lazy-import mode, where top-level function calls (os.environ...)
# and "{{$VAR}}" substitution do not work. `course_utils.xtuner_run.configure(...)` writes a copy with other values.
path = "/root/share/new_models/OpenGVLab/InternVL2-2B"
data_root = "/root/share/datasets/FoodieQA"
data_path = "/root/share/datasets/FoodieQA/sivqa_llava.json"
image_folder = data_root  # the JSON's "image" paths are relative to this folder
prompt_template = PROMPT_TEMPLATE.internlm2_chat  # InternVL2-2B's LLM is internlm2-chat-1.8b
max_length = 8192  # tokens per sample, image tokens included (256 per 448-px tile)

batch_size = 4  # per GPU, the original lab's value on a 50 % A100 (40 GB); on out-of-memory: 2 x 4 or 1 x 8
accumulative_counts = 2  # effective batch = batch_size x accumulative_counts x GPUs = 8
dataloader_num_workers = 4
max_epochs = 10  # FoodieQA's 256 SIVQA items / 4 = 64 iterations per epoch -> iter_640.pth at the end
lr = 3e-5
betas = (0.9, 0.999)
weight_decay = 0.05
max_norm = 1  # gradient clipping
warmup_ratio = 0.03

save_steps = 64  # one checkpoint per epoch of FoodieQA's SIVQA
save_total_limit = 2  # keep the last two checkpoints (-1: every one; each holds the optimizer state, see below)

lora_rank = 128  # LoRA rank r; 16-64 is enough for a few dishes and trains faster
lora_alpha = 256  # scaling = alpha / r = 2

# ---- model: ViT and LLM frozen, LoRA adapters on the LLM; the projector mlp1 is not frozen: it trains in full
model = dict(
    type=InternVL_V1_5,
    model_path=path,
    freeze_llm=True,
    freeze_visual_encoder=True,
    llm_lora=dict(type=LoraConfig, r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.05,
                  target_modules=None,  # None: every linear layer of the LLM (the LM head "output" included)
                  task_type="CAUSAL_LM"),
)

# ---- data ------------------------------------------------------------------------------------------------------
llava_dataset = dict(type=InternVL_V1_5_Dataset, model_path=path, data_paths=data_path,
                     image_folders=image_folder, template=prompt_template, max_length=max_length)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=dataloader_num_workers,
    dataset=llava_dataset,
    sampler=dict(type=LengthGroupedSampler, length_property="modality_length",
                 per_device_batch_size=batch_size * accumulative_counts),
    collate_fn=dict(type=default_collate_fn),
)

# ---- optimisation: AdamW, linear warm-up then cosine decay -------------------------------------------------------
# Precision: the AmpOptimWrapper below (fp16, dynamic loss scaling) applies only when training WITHOUT --deepspeed.
# With `--deepspeed deepspeed_zero2` (the course's command) xtuner's tools/train.py replaces it by a
# DeepSpeedOptimWrapper (same optimizer; accumulative_counts, batch_size and max_norm carry over) and xtuner's
# deepspeed_zero2.json sets fp16 and bf16 to "auto": bf16 on a GPU that supports it (A100), fp16 with DeepSpeed's
# dynamic loss scaling otherwise (V100, T4).
optim_wrapper = dict(
    type=AmpOptimWrapper,
    optimizer=dict(type=AdamW, lr=lr, betas=betas, weight_decay=weight_decay),
    clip_grad=dict(max_norm=max_norm, error_if_nonfinite=False),
    accumulative_counts=accumulative_counts,
    loss_scale="dynamic",
    dtype="float16",
)
param_scheduler = [
    dict(type=LinearLR, start_factor=1e-5, by_epoch=True, begin=0, end=warmup_ratio * max_epochs,
         convert_to_iter_based=True),
    dict(type=CosineAnnealingLR, eta_min=0.0, by_epoch=True, begin=warmup_ratio * max_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type=TrainLoop, max_epochs=max_epochs)

# ---- runtime -----------------------------------------------------------------------------------------------------
tokenizer = dict(type=AutoTokenizer.from_pretrained, pretrained_model_name_or_path=path, trust_remote_code=True)
custom_hooks = [dict(type=DatasetInfoHook, tokenizer=tokenizer)]
default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, log_metric_by_epoch=False, interval=10),  # a log line every 10 iterations
    param_scheduler=dict(type=ParamSchedulerHook),
    # save_optimizer=True (the original lab had False): with --deepspeed, mmengine 0.10.6 then writes iter_N.pth as a
    # DeepSpeed folder with the optimizer state (fp32 weights and AdamW's two moments: 12 bytes per trainable number),
    # which --resume reads; with False it writes a plain file of weights, which --resume cannot read
    # (course_utils.xtuner_checkpoint). The converter reads both.
    checkpoint=dict(type=CheckpointHook, save_optimizer=True, by_epoch=False, interval=save_steps,
                    max_keep_ckpts=save_total_limit),
    sampler_seed=dict(type=DistSamplerSeedHook),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
               dist_cfg=dict(backend="nccl"))
visualizer = None
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
log_processor = dict(by_epoch=False)
