"""Interaction tables (CSV / TSV / Parquet, optionally gzipped) -> interactions of a :class:`KnowledgeGraph`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kg.errors import KGFormatError
from kg.model.graph import KnowledgeGraph

TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_EXAMPLES = 5


@dataclass
class TableReport:
    """What :func:`read_interactions_table` did: rows added, rows skipped because they name a
    user / item the KG does not hold (with up to ``MAX_EXAMPLES`` example ids each)."""

    path: Path
    added: int = 0
    unknown_users: int = 0
    unknown_items: int = 0
    unknown_user_examples: list[str] = field(default_factory=list)
    unknown_item_examples: list[str] = field(default_factory=list)
    skipped: int = 0
    """Rows not added (a row naming both an unknown user and an unknown item counts once)."""

    def summary(self) -> str:
        text = f"{self.path}: {self.added} interactions added"
        if self.skipped:
            text += (f", {self.skipped} rows skipped ({self.unknown_users} unknown user ids e.g. "
                     f"{self.unknown_user_examples}, {self.unknown_items} unknown item ids e.g. "
                     f"{self.unknown_item_examples})")
        return text


def _table_format(path: Path, sep: str | None) -> tuple[str, str | None, str | None]:
    """``(kind, sep, compression)`` with kind ``'text'`` or ``'parquet'``."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = None
    if suffixes and suffixes[-1] == ".gz":
        compression = "gzip"
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in PARQUET_SUFFIXES:
        return "parquet", None, None
    if sep is not None:
        return "text", sep, compression
    if ext in TEXT_SEPARATORS:
        return "text", TEXT_SEPARATORS[ext], compression
    known = ", ".join([*TEXT_SEPARATORS, *PARQUET_SUFFIXES])
    raise KGFormatError(f"{path}: unknown table format {ext or '(no extension)'!r} (known: {known}, "
                        "optionally .gz; or pass sep)")


def _load(path: Path, sep: str | None) -> tuple[pd.DataFrame, str]:
    kind, sep, compression = _table_format(path, sep)
    if not path.is_file():
        raise KGFormatError(f"{path}: no such file")
    try:
        if kind == "parquet":
            return pd.read_parquet(path), "row"
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, compression=compression)
        return df, "line"
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise KGFormatError(f"{path}: cannot read table ({str(e).splitlines()[0] if str(e) else e!r})") from e
    except Exception as e:  # pyarrow raises its own error types on corrupt Parquet
        raise KGFormatError(f"{path}: cannot read table ({type(e).__name__}: {e})") from e


def _where(unit: str, i: int) -> str:
    """Position of data row ``i`` (0-based): its line in a text file (the header is line 1), else its row."""
    return f"line {i + 2}" if unit == "line" else f"row {i + 1}"


def _numeric(df: pd.DataFrame, col: str, path: Path, unit: str, allow_dates: bool) -> np.ndarray:
    raw = df[col]
    if allow_dates and pd.api.types.is_datetime64_any_dtype(raw):
        stamps = pd.to_datetime(raw, utc=True)
        return ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype="float64")
    blank = raw.isna() | (raw.astype(str).str.strip() == "")
    values = pd.to_numeric(raw.where(~blank), errors="coerce").astype("float64")
    bad = values.isna() & ~blank
    if bad.any() and allow_dates:
        dates = pd.to_datetime(raw[bad], errors="coerce", utc=True, format="mixed")
        values[bad] = (dates - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        bad = values.isna() & ~blank
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        kind = "a number or a date" if allow_dates else "a number"
        raise KGFormatError(f"{path}: {_where(unit, i)}: column {col!r}: {raw.iloc[i]!r} is not {kind}")
    return values.to_numpy()


def read_interactions_table(
    path: str | os.PathLike,
    kg: KnowledgeGraph,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    sep: str | None = None,
    strict: bool = False,
    user_prefix: str = "",
    item_prefix: str = "",
) -> TableReport:
    """Add the interactions of a table to ``kg``.

    The format follows the extension: ``.csv`` (``,``), ``.tsv`` / ``.tab`` / ``.txt`` (tab),
    ``.parquet`` / ``.pq``, each text format optionally ``.gz``; ``sep`` overrides the separator.
    Ids are read as strings and prefixed with ``user_prefix`` / ``item_prefix`` (e.g. to match
    the IRIs of a KG read from RDF). Ratings must be numeric (blank = unknown); timestamps
    are numbers (epoch seconds) or dates.

    When ``kg`` already holds users (items), a row naming an unknown user (item) is skipped
    and counted in the returned report, or raises :class:`KGFormatError` naming the file and
    line under ``strict``; when it holds none of that type yet, the nodes are created.

    Raises:
        KGFormatError: unreadable file, missing column (the message lists the columns present),
            blank id, non-numeric rating or unparsable timestamp (naming the line / row).
    """
    path = Path(path)
    df, unit = _load(path, sep)
    for col in (user_col, item_col, rating_col, timestamp_col):
        if col is not None and col not in df.columns:
            raise KGFormatError(f"{path}: no column {col!r} (columns: {', '.join(map(str, df.columns))})")
    users = df[user_col].astype(str).str.strip()
    items = df[item_col].astype(str).str.strip()
    for col, ids in ((user_col, users), (item_col, items)):
        blank = (ids == "") | df[col].isna().to_numpy()
        if blank.any():
            i = int(np.flatnonzero(blank.to_numpy())[0])
            raise KGFormatError(f"{path}: {_where(unit, i)}: blank {col!r}")
    n = len(df)
    ratings = _numeric(df, rating_col, path, unit, False) if rating_col else np.full(n, np.nan)
    stamps = _numeric(df, timestamp_col, path, unit, True) if timestamp_col else np.full(n, np.nan)

    report = TableReport(path)
    check_users, check_items = kg.num_nodes("user") > 0, kg.num_nodes("item") > 0
    rows = zip(users.tolist(), items.tolist(), ratings.tolist(), stamps.tolist(), strict=True)
    for i, (u, it, r, t) in enumerate(rows):
        u, it = user_prefix + u, item_prefix + it
        bad_user = check_users and not kg.has_node("user", u)
        bad_item = check_items and not kg.has_node("item", it)
        if bad_user or bad_item:
            if strict:
                what = f"user {u!r}" if bad_user else f"item {it!r}"
                raise KGFormatError(f"{path}: {_where(unit, i)}: unknown {what} (not in the knowledge graph)")
            _count_unknown(report, u if bad_user else None, it if bad_item else None)
            continue
        kg.add_interaction(u, it, None if np.isnan(r) else r, None if np.isnan(t) else t)
        report.added += 1
    return report


def _count_unknown(report: TableReport, user: str | None, item: str | None) -> None:
    report.skipped += 1
    if user is not None:
        report.unknown_users += 1
        if len(report.unknown_user_examples) < MAX_EXAMPLES and user not in report.unknown_user_examples:
            report.unknown_user_examples.append(user)
    if item is not None:
        report.unknown_items += 1
        if len(report.unknown_item_examples) < MAX_EXAMPLES and item not in report.unknown_item_examples:
            report.unknown_item_examples.append(item)
