"""What train.py writes: checkpoints and JSON written atomically, and the serving embeddings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from gnn.graph_inputs import GraphInputs
from gnn.recommender import TrainableRecommender
from kg.atomic_files import atomic_path, write_text_atomic
from kg.model.graph import KnowledgeGraph


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


def write_json(obj: Any, path: Path) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))


def export_embeddings(model: TrainableRecommender, inputs: GraphInputs, kg: KnowledgeGraph, out: Path) -> None:
    """Final ``user_emb [U, d]`` / ``item_emb [I, d]`` as safetensors, and the external ids as JSON."""
    from safetensors.torch import save_file

    with torch.no_grad():
        user_emb, item_emb = model(inputs)
    tmp = out / f".embeddings.{os.getpid()}.tmp"
    save_file({"user_emb": user_emb.float().cpu().contiguous(), "item_emb": item_emb.float().cpu().contiguous()},
              str(tmp), metadata={"score": "dot", "model": type(model).__name__})
    os.replace(tmp, out / "embeddings.safetensors")
    write_json({"user": kg.ids("user"), "item": kg.ids("item")}, out / "ids.json")
