"""Every user's top-k items from a loaded checkpoint, streamed to a Parquet file with bounded memory.

Users are scored a batch at a time (:func:`evaluation.ranking.top_k_batch`: ties -> lower item index first) and each
batch is one row group written by ``pyarrow.parquet.ParquetWriter``, so memory holds one batch of
``batch_size x num_items`` scores, never the whole table. The file is written under a temporary name and renamed
when complete (:func:`kg.atomic_files.atomic_path`): a crash leaves no partial ``recs.parquet``.

Columns: ``user`` and ``item`` (external ids, strings), ``rank`` (int32, 1 = best), ``score`` (float32, the
model's score). Masked items (:data:`MASKS`) are never listed; a user with fewer than ``k`` items left gets fewer
rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation import EvaluationError
from evaluation.ranking import UserItemSets, top_k_batch
from kg.atomic_files import atomic_path

if TYPE_CHECKING:
    import pyarrow as pa

    from evaluation.checkpoint_scoring import LoadedCheckpoint

MASKS = ("train", "seen", "none")
"""``train``: the split's training items of each user (the default); ``seen``: every item the user interacted
with (training, validation and test); ``none``: nothing masked."""


def mask_sets(ck: LoadedCheckpoint, mask: str) -> UserItemSets | None:
    """The per-user item sets never to recommend under ``mask`` (one of :data:`MASKS`)."""
    if mask not in MASKS:
        raise EvaluationError(f"unknown mask {mask!r}; expected one of {', '.join(MASKS)}")
    train, valid, test = ck.sets
    return {"train": train, "seen": train.union(valid).union(test), "none": None}[mask]


def parquet_schema() -> pa.Schema:
    """The output's Arrow schema (see the module docstring)."""
    import pyarrow as pa

    return pa.schema([("user", pa.string()), ("rank", pa.int32()), ("item", pa.string()), ("score", pa.float32())])


def write_topk_parquet(ck: LoadedCheckpoint, out: str | Path, k: int, batch_size: int = 1024, mask: str = "train",
                       progress: bool = False) -> int:
    """Write the top ``k`` items of every user of ``ck``'s KG to ``out`` (Parquet); returns the rows written.

    Raises :class:`EvaluationError` on ``k`` or ``batch_size`` < 1, an unknown ``mask`` or NaN scores (nothing
    written).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if k < 1 or batch_size < 1:
        raise EvaluationError(f"k and batch_size must be >= 1, got {k}, {batch_size}")
    exclude = mask_sets(ck, mask)
    kg = ck.kg
    users = np.asarray(kg.ids("user"), dtype=object)
    items = np.asarray(kg.ids("item"), dtype=object)
    n_users, n_items = len(users), len(items)
    if n_items == 0:
        raise EvaluationError(f"{ck.kg_dir}: the KG has no items")
    score_fn, schema, written = ck.score_fn(), parquet_schema(), 0
    with atomic_path(out, suffix=".parquet") as tmp, pq.ParquetWriter(str(tmp), schema) as writer:
        for start in tqdm(range(0, n_users, batch_size), desc="top-k", unit="batch", disable=not progress):
            batch = torch.arange(start, min(start + batch_size, n_users), dtype=torch.long)
            with torch.no_grad():
                scores, idx = top_k_batch(score_fn, batch, n_items, exclude, min(k, n_items))
            keep = (idx >= 0).numpy()
            rows, cols = np.nonzero(keep)
            table = pa.Table.from_arrays([
                pa.array(users[batch.numpy()[rows]], pa.string()), pa.array(cols + 1, pa.int32()),
                pa.array(items[idx.numpy()[rows, cols]], pa.string()),
                pa.array(scores.numpy()[rows, cols].astype(np.float32), pa.float32())], schema=schema)
            writer.write_table(table)
            written += table.num_rows
    return written
