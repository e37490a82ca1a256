"""Models: one file each. ``build_model(config, dataset)`` makes the one a config names."""

from __future__ import annotations

import torch

from seqnb.config import RunConfig
from seqnb.data.dataset import Dataset
from seqnb.models.embeddings import ItemTable, NeighbourAveragedTable
from seqnb.models.mf_bpr import MFBPR
from seqnb.models.sasrec import SASRec
from seqnb.models.stamp import STAMP
from seqnb.models.zero_block import ZeroBlock

__all__ = ["MFBPR", "STAMP", "ItemTable", "NeighbourAveragedTable", "SASRec", "ZeroBlock"]


def build_item_table(config: RunConfig, dataset: Dataset) -> ItemTable:
    if config.smooth_band is None:
        return ItemTable(dataset.num_items, config.embedding_dim)
    return NeighbourAveragedTable(
        dataset.num_items,
        config.embedding_dim,
        dataset.item_frequency,
        config.smooth_band,
        dataset.train_sequences,
        config.smooth_self_loops,
    )


def build_model(config: RunConfig, dataset: Dataset):
    """The model a configuration names, Xavier-normal initialised (biases zero)."""
    items = build_item_table(config, dataset)
    if config.model == "sasrec":
        model = SASRec(items, config.maxlen, config.num_blocks, config.num_heads, config.dropout)
    elif config.model == "zero_block":
        model = ZeroBlock(items)
    elif config.model.startswith("stamp"):
        variant = {"stamp": "full", "stamp_only_ht": "only_ht", "stamp_only_mt": "only_mt"}
        model = STAMP(items, variant[config.model])
    elif config.model == "mf_bpr":
        model = MFBPR(dataset.num_users, items)
    else:  # validated in RunConfig
        raise ValueError(config.model)
    for name, p in model.named_parameters():
        if p.dim() >= 2 and "ln" not in name:
            torch.nn.init.xavier_normal_(p)
        elif name.endswith("bias") and "ln" not in name:
            torch.nn.init.zeros_(p)
    return model
