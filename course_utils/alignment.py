"""Contrastive alignment (对齐) of images and texts: the CLIP recipe at mini size.

A dual encoder maps images and captions into one embedding space; the symmetric InfoNCE loss pulls each image
towards its own caption and pushes it away from the other captions in the batch. This module holds the loss, the
retrieval metrics, the training loop used live in notebook 01, zero-shot classification from class names and the
temporal-alignment demo. The model itself (``mini.build_dual_encoder``) and the cached *pretrained* one whose vision
tower later notebooks reuse as a frozen "CLIP" (02, 03, 05: ``mini.pretrained_dual_encoder``) live in
``course_utils.mini.clip_train``.

Mirrors: CLIP (Radford et al., 2021, arXiv:2103.00020), Figure 3's pseudo-code; transformers' ``clip_loss``.
Introduced in notebook 01.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import data

MAX_LOGIT_SCALE = float(np.log(100.0))  # CLIP clamps the learnable scale at 100 (temperature ≥ 0.01)


def info_nce(
    image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: float | torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP) loss for a batch of matching pairs: row i of each input belongs together.

    Embeddings are L2-normalised here; logits = cosine similarity / temperature; the loss is the mean of the
    image→text and text→image cross-entropies with the diagonal as targets.
    """
    if image_emb.shape != text_emb.shape or image_emb.dim() != 2:
        raise ValueError(
            f"need two (batch, dim) tensors of one shape, got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
        )
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T / temperature
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def cosine_similarity_matrix(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """(n_images, n_texts) cosine similarities."""
    return F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T


def retrieval_accuracy(sim: torch.Tensor, targets: torch.Tensor, k: int = 1) -> tuple[float, float]:
    """Top-k accuracy (image→text, text→image) for ``sim`` of shape (n_images, n_texts).

    ``targets[i]`` is the index of image i's correct text. Image→text: is the right text in image i's top k?
    Text→image: for each text that has images, is one of *its* images in the text's top k?
    """
    k_t = min(k, sim.shape[1])
    i2t = (sim.topk(k_t, dim=1).indices == targets[:, None]).any(1).float().mean().item()
    texts = targets.unique()
    k_i = min(k, sim.shape[0])
    top_images = sim[:, texts].topk(k_i, dim=0).indices  # (k, n_texts_with_images)
    t2i = (targets[top_images] == texts[None, :]).any(0).float().mean().item()
    return i2t, t2i


@dataclass
class AlignConfig:
    """Sizes of the mini dual encoder and its training run.

    Defaults measured on held-out images, 1 thread: ~88 % image→text and ~98 % text→image top-1 in ~35 s.
    """

    image_size: int = 48
    patch_size: int = 8
    hidden: int = 64
    layers: int = 2
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    images_per_combo: int = 60
    seed: int = 0
    combos: list = field(default_factory=data.all_combos)


def _features(output) -> torch.Tensor:
    return output.pooler_output if hasattr(output, "pooler_output") else output


def encode_images(model, processor, images) -> torch.Tensor:
    """Projected image embeddings (not normalised), no gradient."""
    pixels = processor.image_processor(list(images), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return _features(model.get_image_features(pixel_values=pixels))


def encode_texts(model, processor, texts) -> torch.Tensor:
    """Projected text embeddings (not normalised), no gradient."""
    tokens = processor.tokenizer(list(texts), padding=True, return_tensors="pt")
    with torch.no_grad():
        return _features(
            model.get_text_features(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask)
        )


def training_data(processor, config: AlignConfig):
    """The training pool of ``train_dual_encoder``: ``(pixel_values, caption tokens, sampler)``.

    ``len(config.combos) * images_per_combo`` generated images (seed ``config.seed + 1``), their pixel values, the
    distinct captions tokenised once, and a ``data.CaptionSampler`` that draws batches of distinct captions.
    """
    combos = list(config.combos)
    pool = data.make_shapes(
        len(combos) * config.images_per_combo,
        image_size=config.image_size,
        seed=config.seed + 1,
        combos=combos,
    )
    pixels = processor.image_processor([it.image for it in pool], return_tensors="pt")["pixel_values"]
    captions = sorted({it.caption for it in pool})
    caption_id = {c: i for i, c in enumerate(captions)}
    tokens = processor.tokenizer(captions, padding=True, return_tensors="pt")
    return pixels, tokens, data.CaptionSampler([caption_id[it.caption] for it in pool])


def train_dual_encoder(
    model, processor, config: AlignConfig, *, progress: bool = True
) -> dict[str, list[float]]:
    """Train ``model`` with ``info_nce`` and CLIP's learnable temperature; returns the loss/temperature history.

    Each batch holds distinct captions (no false negatives): ``batch_size`` combos drawn without replacement,
    one random image of each from a pool of ``images_per_combo`` images per combo. Notebook 01 writes the loop
    body out (encode, normalise, logits / temperature, symmetric InfoNCE, step) and checks it against this loop.
    """
    from tqdm.auto import tqdm

    pixels, tokens, sampler = training_data(processor, config)
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.05
    )
    history: dict[str, list[float]] = {"loss": [], "temperature": []}
    model.train()
    for _ in tqdm(range(config.steps), desc="contrastive training", disable=not progress):
        chosen, picks = sampler.sample(config.batch_size, g)
        image_emb = _features(model.get_image_features(pixel_values=pixels[picks]))
        text_emb = _features(
            model.get_text_features(
                input_ids=tokens.input_ids[chosen], attention_mask=tokens.attention_mask[chosen]
            )
        )
        temperature = 1.0 / model.logit_scale.exp()
        loss = info_nce(image_emb, text_emb, temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        history["loss"].append(loss.item())
        history["temperature"].append(temperature.item())
    model.eval()
    return history


def evaluate_retrieval(
    model, processor, items: list[data.ShapeItem], captions: list[str], ks=(1, 5)
) -> dict[str, float]:
    """Retrieval accuracies of ``items`` against the caption list ``captions`` (e.g. all 48)."""
    sim = cosine_similarity_matrix(
        encode_images(model, processor, [it.image for it in items]), encode_texts(model, processor, captions)
    )
    targets = torch.tensor([captions.index(it.caption) for it in items])
    out = {}
    for k in ks:
        out[f"i2t@{k}"], out[f"t2i@{k}"] = retrieval_accuracy(sim, targets, k)
    return out


def zero_shot_classifier(
    model, processor, class_names: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """(n_classes, dim) unit-length class embeddings: a classifier written by the text tower, with no training.

    Each template (a string with one ``{}``) is filled with every class name; the texts are embedded, L2-normalised,
    averaged over the templates of each class and normalised again (prompt ensembling in embedding space). An image
    gets the class whose row is most similar: ``(F.normalize(image_emb, dim=-1) @ weights.T).argmax(1)``. One
    template gives the plain zero-shot classifier. Introduced in notebook 01 (zero-shot shape and colour).

    Mirrors CLIP's zero-shot recipe (Radford et al. 2021, arXiv:2103.00020, Sec. 3.1.4 "Prompt engineering and
    ensembling") and ``zeroshot_classifier`` in openai/CLIP's ``notebooks/Prompt_Engineering_for_ImageNet.ipynb``,
    which returns the transpose, (dim, n_classes).
    """
    class_names, templates = list(class_names), list(templates)
    if not class_names or not templates:
        raise ValueError("need at least one class name and one template")
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise ValueError(
            f"each template needs exactly one '{{}}' for the class name, as in 'a big red {{}}': {bad}"
        )
    texts = [template.format(name) for template in templates for name in class_names]
    emb = F.normalize(encode_texts(model, processor, texts), dim=-1)
    per_template = emb.reshape(len(templates), len(class_names), -1)  # (n_templates, n_classes, dim)
    return F.normalize(per_template.mean(0), dim=-1)


def linear_probe(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    *, steps: int = 300, lr: float = 1e-2, weight_decay: float = 1e-3,
) -> float:  # fmt: skip
    """Held-out accuracy of a linear classifier trained on frozen features: how much of a label they carry, linearly.

    Features are standardised with the training set's mean and spread; one linear layer (softmax regression with an
    L2 penalty ``weight_decay``) learns by full-batch Adam from zeros, so the result is deterministic. CLIP's paper
    evaluates its features the same way (Radford et al. 2021, Sec. 3.2, "linear-probe evaluation"), with scikit-learn's
    L-BFGS logistic regression instead of Adam. Introduced in notebook 03 (which ViT layer carries the shape).
    """
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"features must be (n, d) with the same d; got {tuple(train_x.shape)} and {tuple(test_x.shape)}"
        )
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("one label per row: features and labels differ in length")
    mean, std = train_x.mean(0), train_x.std(0) + 1e-5
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    weight = torch.zeros(train_x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + weight_decay * weight.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return ((test_x @ weight + bias).argmax(1) == test_y).float().mean().item()


def temporal_alignment(sim: torch.Tensor) -> list[int]:
    """Label each video frame with a subtitle, keeping both in time order (dynamic programming, like DTW).

    ``sim`` is (n_subtitles, n_frames). Returns one subtitle index per frame; the labels never go back in time,
    every subtitle gets at least one frame, and the total similarity of the labelled pairs is maximal.
    """
    s = sim.detach().cpu().double().numpy()
    n, m = s.shape
    if n > m:
        raise ValueError(f"{n} subtitles for {m} frames: every subtitle needs at least one frame")
    best = np.full((n, m), -np.inf)  # best[i, j]: best score of frames 0..j with frame j showing subtitle i
    best[0, 0] = s[0, 0]
    for j in range(1, m):
        for i in range(min(j + 1, n)):
            stay = best[i, j - 1]
            advance = best[i - 1, j - 1] if i > 0 else -np.inf
            best[i, j] = s[i, j] + max(stay, advance)
    labels, i = [0] * m, n - 1
    for j in range(m - 1, -1, -1):
        labels[j] = i
        if j > 0 and i > 0 and best[i - 1, j - 1] > best[i, j - 1]:
            i -= 1
    return labels


def pca_2d(*embeddings: torch.Tensor) -> list[torch.Tensor]:
    """Project several sets of embeddings (normalised first) onto the top-2 principal axes of all of them together."""
    normed = [F.normalize(e.float(), dim=-1) for e in embeddings]
    stacked = torch.cat(normed)
    mean = stacked.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(stacked - mean, full_matrices=False)
    return [(e - mean) @ v[:2].T for e in normed]
