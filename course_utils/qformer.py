"""BLIP-2's Q-Former from scratch, at mini size, with its three stage-1 objectives and their masks.

The Q-Former is one BERT-like transformer over a sequence ``[queries; text]``. The learned queries are the only
tokens that cross-attend to the frozen image features (every ``cross_attention_freq``-th block); queries and text
share the self-attention layers, and *who may attend to whom* is set by the objective's mask:

* **ITC** (image–text contrastive): uni-modal — queries see queries, text sees text;
* **ITM** (image–text matching): bi-directional — everything sees everything;
* **ITG** (image-grounded text generation): multimodal causal — queries see queries; text sees all queries and
  the text before it (the first text token is ``[DEC]`` instead of ``[CLS]``).

Mirrors: BLIP-2 (Li et al., 2023, arXiv:2301.12597), Figure 2; LAVIS ``blip2_qformer.Blip2Qformer.forward`` and
``Qformer.BertModel.get_extended_attention_mask`` (padding, ITC temperature initialised at 0.07, hard-negative
sampling). One addition is not BLIP-2's: clamping the temperature to (0.001, 0.5) comes from BLIP-1 (LAVIS
``blip_models/blip_pretrain.py``); LAVIS's ``Blip2Qformer`` learns it unclamped.
Introduced in notebook 02, which writes out a block (``QFormerLayer``), the forward pass (``QFormer.forward``) and
the three losses (``QFormer.stage1_losses``) and asserts that this module, the packaged copy, gives the same numbers.
Its retrieval evaluation, ITC candidates re-ranked by the ITM head, is ``itm_rerank`` (also written out in 02).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import data


def attention_masks(
    num_query: int, text_len: int, text_attention_mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """The three objectives' self-attention masks over ``[queries; text]``: True = row token may attend to column.

    ``text_attention_mask`` (1 = real token, 0 = padding; shape (text_len,)) masks padded *columns*, as LAVIS's
    BERT masks do; padded rows keep their pattern (their outputs are ignored by the losses).
    """
    n = num_query + text_len
    text_ok = (
        torch.ones(text_len, dtype=torch.bool)
        if text_attention_mask is None
        else text_attention_mask.bool().reshape(text_len)
    )
    col_ok = torch.cat([torch.ones(num_query, dtype=torch.bool), text_ok])
    is_query = torch.arange(n) < num_query
    q_row, q_col = is_query[:, None], is_query[None, :]
    same_modality = q_row == q_col
    causal_text = torch.ones(text_len, text_len, dtype=torch.bool).tril()
    itg = torch.zeros(n, n, dtype=torch.bool)
    itg[:num_query, :num_query] = True  # queries see queries only
    itg[num_query:, :num_query] = True  # text sees every query ...
    itg[num_query:, num_query:] = causal_text  # ... and the text up to itself
    return {
        "itc": same_modality & col_ok[None, :],
        "itm": col_ok[None, :].expand(n, n).clone(),
        "itg": itg & col_ok[None, :],
    }


def hard_negative_weights(sim: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row probabilities of picking each in-batch candidate as the ITM hard negative (LAVIS today).

    ``sim`` is square (already divided by the temperature); the diagonal (the positive) is set to -10000 and each
    row goes through a softmax, so more similar candidates are likelier and the positive (almost) never drawn.
    With ``ids`` (one per sample, LAVIS's ``image_id``) every pair that shares an id is masked the same way: a twin
    is a positive too. Notebook 02 (its Exercise 2 asks for the ``ids`` case); ``sim`` is left unchanged.
    """
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"need a square similarity matrix, got shape {tuple(sim.shape)}")
    n = sim.shape[0]
    same = torch.eye(n, dtype=torch.bool, device=sim.device) if ids is None else ids[:, None] == ids[None, :]
    return F.softmax(sim.detach().float().masked_fill(same, -10000.0), dim=1)


def sample_hard_negatives(sim: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One hard-negative index per row, drawn from ``hard_negative_weights(sim)`` (``torch.multinomial``)."""
    return torch.multinomial(hard_negative_weights(sim), 1, generator=generator).squeeze(1)


@dataclass
class QFormerConfig:
    """Mini sizes by default; BLIP-2's real ones in the comments."""

    vocab_size: int
    vision_dim: int = 64  # EVA ViT-g: 1408
    hidden: int = 64  # 768 (BERT-base)
    heads: int = 4  # 12
    layers: int = 4  # 12
    num_queries: int = 8  # 32
    cross_attention_freq: int = 2  # 2: cross-attention in every other block
    max_text_len: int = 16  # 32
    embed_dim: int = 32  # 256: the ITC projection
    ffn_mult: int = 2  # 4 (BERT's 3072 = 4 × 768)


class Attention(nn.Module):
    """Multi-head attention with a boolean mask (True = allowed)."""

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None):
        super().__init__()
        kv_dim = kv_dim or dim
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(kv_dim, dim), nn.Linear(kv_dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, context, mask=None):
        b, n, d = x.shape

        def split(t):
            return t.view(b, -1, self.heads, d // self.heads).transpose(1, 2)

        attn_mask = None if mask is None else mask[:, None] if mask.dim() == 3 else mask
        y = F.scaled_dot_product_attention(
            split(self.q(x)), split(self.k(context)), split(self.v(context)), attn_mask=attn_mask
        )
        return self.out(y.transpose(1, 2).reshape(b, n, d))


def _ffn(dim: int, mult: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, mult * dim), nn.GELU(), nn.Linear(mult * dim, dim))


class QFormerLayer(nn.Module):
    """Shared self-attention; cross-attention to the image for the queries only; separate FFNs for queries and text.

    Mirrors LAVIS ``Qformer.BertLayer`` (``intermediate_query``/``output_query`` are the query FFN). Notebook 02 writes
    this forward out as ``qformer_block`` and checks it against this class.
    """

    def __init__(self, cfg: QFormerConfig, cross: bool):
        super().__init__()
        self.self_attn, self.ln_self = Attention(cfg.hidden, cfg.heads), nn.LayerNorm(cfg.hidden)
        self.cross_attn = Attention(cfg.hidden, cfg.heads, cfg.vision_dim) if cross else None
        self.ln_cross = nn.LayerNorm(cfg.hidden) if cross else None
        self.ffn_query, self.ln_query = _ffn(cfg.hidden, cfg.ffn_mult), nn.LayerNorm(cfg.hidden)
        self.ffn_text, self.ln_text = _ffn(cfg.hidden, cfg.ffn_mult), nn.LayerNorm(cfg.hidden)

    def forward(self, x, num_query: int, mask, image):
        x = self.ln_self(x + self.self_attn(x, x, mask))  # post-LN, as BERT
        q, t = x[:, :num_query], x[:, num_query:]
        if self.cross_attn is not None and num_query:
            q = self.ln_cross(q + self.cross_attn(q, image))
        q = self.ln_query(q + self.ffn_query(q))
        t = self.ln_text(t + self.ffn_text(t))
        return torch.cat([q, t], dim=1)


class QFormer(nn.Module):
    """The mini Q-Former with BLIP-2's stage-1 heads (ITC projections, ITM head, LM head) and temperature.

    Unlike BLIP-2 it starts from scratch (no BERT weights) with PyTorch's default initialisation; BERT's N(0, 0.02)
    initialisation learned several times slower at this size (measured on the shapes data).
    """

    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.cfg = cfg
        self.ln_vision = nn.LayerNorm(cfg.vision_dim)  # BLIP-2 normalises the frozen ViT's features first
        self.query_tokens = nn.Parameter(torch.randn(1, cfg.num_queries, cfg.hidden) * 0.02)
        self.word_emb = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.pos_emb = nn.Embedding(cfg.max_text_len, cfg.hidden)
        self.ln_emb = nn.LayerNorm(cfg.hidden)
        self.layers = nn.ModuleList(
            QFormerLayer(cfg, cross=(i % cfg.cross_attention_freq == 0)) for i in range(cfg.layers)
        )
        self.vision_proj, self.text_proj = (
            nn.Linear(cfg.hidden, cfg.embed_dim),
            nn.Linear(cfg.hidden, cfg.embed_dim),
        )
        self.itm_head = nn.Linear(cfg.hidden, 2)
        self.lm_head = nn.Linear(cfg.hidden, cfg.vocab_size)
        self.lm_head.weight = self.word_emb.weight  # tied, as BERT's LM head
        self.temp = nn.Parameter(torch.tensor(0.07))

    def forward(self, image_feats, input_ids=None, text_attention_mask=None, mode: str | list[str] = "itm"):
        """Hidden states of ``[queries; text]``: queries only when ``input_ids`` is None.

        ``mode`` picks the mask ("itc", "itm" or "itg"); a list gives each sample its own mask, so several
        objectives can share one batched forward pass. Written out in notebook 02 as ``qformer_forward``.
        """
        b = image_feats.shape[0]
        x = self.query_tokens.expand(b, -1, -1)
        t = 0 if input_ids is None else input_ids.shape[1]
        if t:
            text = self.word_emb(input_ids) + self.pos_emb(torch.arange(t, device=input_ids.device))
            x = torch.cat([x, text], dim=1)
        x = self.ln_emb(x)
        nq = self.cfg.num_queries
        if text_attention_mask is None:
            text_attention_mask = torch.ones(b, t, dtype=torch.bool, device=x.device)
        # padding only removes columns, so one mask per objective and one column mask per sample suffice
        base = attention_masks(nq, t)
        modes = [mode] * b if isinstance(mode, str) else list(mode)
        rows = torch.stack([base[m] for m in modes]).to(x.device)
        cols = torch.cat(
            [torch.ones(b, nq, dtype=torch.bool, device=x.device), text_attention_mask.bool()], dim=1
        )
        mask = rows & cols[:, None, :]
        image = self.ln_vision(image_feats)
        for layer in self.layers:
            x = layer(x, nq, mask, image)
        return x

    def stage1_losses(
        self, image_feats, input_ids, text_attention_mask, *, dec_token_id: int, generator=None
    ) -> dict:
        """ITC, ITM and ITG losses for a batch of matching (image, text) pairs, as LAVIS computes them.

        Notebook 02 writes them out (``stage1_losses`` there, with one pass per objective) and checks this method
        against it; here ITM and ITG share one batched pass, each sample with its own mask.
        """
        nq, b = self.cfg.num_queries, input_ids.shape[0]
        with torch.no_grad():  # BLIP-1's clamp (LAVIS blip_pretrain.py), not in LAVIS's Blip2Qformer
            self.temp.clamp_(0.001, 0.5)
        # ITC: under the uni-modal mask queries and text cannot see each other, so one pass gives both sides
        out = self.forward(image_feats, input_ids, text_attention_mask, mode="itc")
        img = F.normalize(self.vision_proj(out[:, :nq]), dim=-1)  # (b, nq, e)
        txt = F.normalize(self.text_proj(out[:, nq]), dim=-1)  # the text's first ([CLS]) token, (b, e)
        sim_i2t = torch.einsum("iqe,te->itq", img, txt).max(-1).values / self.temp  # max over the queries
        sim_t2i = sim_i2t.T
        targets = torch.arange(b, device=input_ids.device)
        itc = (
            F.cross_entropy(sim_i2t, targets, label_smoothing=0.1)
            + F.cross_entropy(sim_t2i, targets, label_smoothing=0.1)
        ) / 2
        # ITM samples: positives, (text, hard-negative image), (image, hard-negative text);
        # ITG samples: [DEC] replaces [CLS]. Both go through one forward, each sample with its own mask.
        neg_img = sample_hard_negatives(sim_t2i, generator)
        neg_txt = sample_hard_negatives(sim_i2t, generator)
        dec_ids = input_ids.clone()
        dec_ids[:, 0] = dec_token_id
        feats = torch.cat([image_feats, image_feats[neg_img], image_feats, image_feats])
        ids = torch.cat([input_ids, input_ids, input_ids[neg_txt], dec_ids])
        att = torch.cat(
            [text_attention_mask, text_attention_mask, text_attention_mask[neg_txt], text_attention_mask]
        )
        out = self.forward(feats, ids, att, mode=["itm"] * (3 * b) + ["itg"] * b)
        logits = self.itm_head(out[: 3 * b, :nq]).mean(1)  # one binary logit pair per query, averaged
        labels = torch.cat([torch.ones(b), torch.zeros(2 * b)]).long().to(logits.device)
        itm = F.cross_entropy(logits, labels)
        scores = self.lm_head(out[3 * b :, nq:-1])  # predict each next text token, never the padding
        target = dec_ids[:, 1:].masked_fill(~text_attention_mask[:, 1:].bool(), -100)
        itg = F.cross_entropy(
            scores.reshape(-1, scores.shape[-1]), target.reshape(-1), ignore_index=-100, label_smoothing=0.1
        )
        return {"itc": itc, "itm": itm, "itg": itg, "sim_i2t": sim_i2t.detach()}

    @torch.no_grad()
    def itc_similarity(self, image_feats, input_ids, text_attention_mask) -> torch.Tensor:
        """(n_images, n_texts) ITC similarity: max over queries of cosine(query output, text [CLS] output)."""
        nq = self.cfg.num_queries
        img = F.normalize(self.vision_proj(self.forward(image_feats)[:, :nq]), dim=-1)
        dummy = image_feats[:1].expand(len(input_ids), -1, -1)  # under the ITC mask text never sees the image
        txt = F.normalize(
            self.text_proj(self.forward(dummy, input_ids, text_attention_mask, mode="itc")[:, nq]), dim=-1
        )
        return torch.einsum("iqe,te->itq", img, txt).max(-1).values

    @torch.no_grad()
    def itm_logits(self, image_feats, input_ids, text_attention_mask) -> torch.Tensor:
        """(n, 2) ITM logits (no match, match) of each (image, text) pair, averaged over the query outputs (row i pairs
        image i and text i; LAVIS ``compute_itm`` reads ``[:, 1]``, the match logit)."""
        out = self.forward(image_feats, input_ids, text_attention_mask, mode="itm")
        return self.itm_head(out[:, : self.cfg.num_queries]).mean(1)

    def itm_score(self, image_feats, input_ids, text_attention_mask) -> torch.Tensor:
        """Probability that each (image, text) pair matches, from the ITM head (row i pairs image i and text i)."""
        return self.itm_logits(image_feats, input_ids, text_attention_mask).softmax(-1)[:, 1]

    @torch.no_grad()
    def generate(self, image_feats, bos_id: int, eos_id: int, max_new_tokens: int = 8) -> torch.Tensor:
        """Greedy captioning with the ITG mask, starting from ``[DEC]`` (``bos_id``)."""
        ids = torch.full((image_feats.shape[0], 1), bos_id, dtype=torch.long, device=image_feats.device)
        for _ in range(max_new_tokens):
            hidden = self.forward(image_feats, ids, None, mode="itg")
            next_id = self.lm_head(hidden[:, -1]).argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
            if (ids == eos_id).any(1).all():
                break
        return ids[:, 1:]


def caption_ids(tokenizer, captions: list[str], max_len: int | None = None):
    """Token ids for the Q-Former's text side: ``[CLS] caption <|endoftext|>``, right-padded (BERT style)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        texts = [f"[CLS]{c}<|endoftext|>" for c in captions]
        padding = "max_length" if max_len else "longest"
        return tokenizer(
            texts, add_special_tokens=False, padding=padding, max_length=max_len, return_tensors="pt"
        )
    finally:
        tokenizer.padding_side = side


def train_stage1(
    model: QFormer,
    image_feats: torch.Tensor,
    owner: torch.Tensor,
    input_ids: torch.Tensor,
    text_attention_mask: torch.Tensor,
    *,
    dec_token_id: int,
    steps: int,
    batch_size: int = 24,
    lr: float = 1e-3,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    seed: int = 0,
    progress: bool = True,
) -> dict[str, list[float]]:
    """BLIP-2 stage 1 on precomputed frozen image features: minimise ``weights · (ITC, ITM, ITG)``.

    ``image_feats[i]`` shows the caption ``input_ids[owner[i]]``. Each batch holds distinct captions (so the
    in-batch negatives are true negatives), one random image each. Returns the per-step loss history.
    """
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    sampler = data.CaptionSampler(owner)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    history: dict[str, list[float]] = {"itc": [], "itm": [], "itg": []}
    model.train()
    for _ in tqdm(range(steps), desc="Q-Former stage 1", disable=not progress):
        chosen, picks = sampler.sample(batch_size, g)
        losses = model.stage1_losses(
            image_feats[picks],
            input_ids[chosen],
            text_attention_mask[chosen],
            dec_token_id=dec_token_id,
            generator=g,
        )
        total = sum(w * losses[k] for w, k in zip(weights, ("itc", "itm", "itg"), strict=True))
        opt.zero_grad()
        total.backward()
        opt.step()
        sched.step()
        for k in history:
            history[k].append(losses[k].item())
    model.eval()
    return history


@torch.no_grad()
def itm_rerank(
    model: QFormer,
    image_feats: torch.Tensor,
    input_ids: torch.Tensor,
    text_attention_mask: torch.Tensor,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Retrieval scores as BLIP-2 evaluates them: ITC shortlists ``k`` candidates, the ITM head re-scores them.

    Returns ``(score_i2t, score_t2i)`` of shapes (n_images, n_texts) and (n_texts, n_images). Each image's ``k`` texts
    with the highest ITC similarity (``QFormer.itc_similarity``: a cosine, not divided by the temperature) score
    *ITM logit + ITC similarity*, where the ITM logit is the head's "match" logit averaged over the query outputs (a
    logit, not a probability); every other pair scores -100. Likewise each text's ``k`` images. ``k`` is capped at
    the number of candidates, so a large ``k`` re-scores every pair.

    Mirrors LAVIS ``lavis/models/blip2_models/blip2.py`` ``compute_sim_matrix`` (``sims.topk(k=k_test)``, then
    ``score_matrix_i2t[start + i, topk_idx] = score + topk_sim`` in a matrix filled with -100) with
    ``Blip2Qformer.compute_itm`` (``itm_logit[:, :, 1].mean(dim=1)``); BLIP-2 uses ``k_test: 128`` on COCO
    (``lavis/projects/blip2/eval/ret_coco_eval.yaml``). Notebook 02 writes the image→text half out and checks it
    against this function.
    """
    sim = model.itc_similarity(image_feats, input_ids, text_attention_mask)  # (n_images, n_texts)

    def itm_logit(
        images: torch.Tensor, texts: torch.Tensor
    ) -> torch.Tensor:  # LAVIS compute_itm: the "match" logit
        return model.itm_logits(image_feats[images], input_ids[texts], text_attention_mask[texts])[:, 1]

    k_texts, k_images = min(k, sim.shape[1]), min(k, sim.shape[0])
    top_sim, top_texts = sim.topk(k_texts, dim=1)  # each image's shortlist of texts
    images = torch.arange(sim.shape[0], device=sim.device).repeat_interleave(k_texts)
    itm = itm_logit(images, top_texts.flatten()).view(-1, k_texts)
    score_i2t = torch.full_like(sim, -100.0).scatter_(1, top_texts, itm + top_sim)
    top_sim, top_images = sim.T.topk(k_images, dim=1)  # each text's shortlist of images
    texts = torch.arange(sim.shape[1], device=sim.device).repeat_interleave(k_images)
    itm = itm_logit(top_images.flatten(), texts).view(-1, k_images)
    score_t2i = torch.full_like(sim.T, -100.0).scatter_(1, top_images, itm + top_sim)
    return score_i2t, score_t2i
