"""Finding a dataset's directory (``ml-100k`` by default).

Search order: the ``--data-dir`` flag, the ``MMKGREC_DATA`` environment variable
(the folder that holds ``ml-100k/``, or ``ml-100k/`` itself), ``<repo>/../shared/data/<name>``
(``<repo>`` is the folder holding the ``kg`` package) and ``./data/<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from kg.errors import MMKGError

ENV_VAR = "MMKGREC_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository root: the parent of the ``kg`` package."""

ML100K_FILES = (
    "ml-100k.inter, .item, .user, .kg, .link, ml-100k.imdb.csv, posters/<item_id>.jpg"
)
ML100K_SOURCES = (
    "MovieLens-100K from GroupLens, RecBole's atomic ml-100k KG files (the RecBole dataset collection "
    "for KG-aware recommendation), an IMDb-derived ml-100k.imdb.csv and the posters"
)


def _resolve(base: Path, name: str) -> Path | None:
    """``base/name`` when it is a folder, else ``base`` itself when it is the dataset folder."""
    if (base / name).is_dir():
        return base / name
    if base.is_dir() and (base.name == name or any(base.glob(f"{name}.*"))):
        return base
    return None


def find_data_dir(explicit: str | os.PathLike | None, name: str = "ml-100k") -> Path:
    """The directory of dataset ``name``.

    Args:
        explicit: the ``--data-dir`` flag (the dataset folder or the folder holding it);
            when given it must exist, no other place is tried.
        name: the dataset's folder name.

    Raises:
        MMKGError: nothing found; the message lists the places tried and the files expected.
    """
    tried: list[Path] = []
    if explicit is not None:
        candidates = [Path(explicit)]
    else:
        candidates = []
        env = os.environ.get(ENV_VAR)
        if env:
            candidates.append(Path(env))
        candidates += [REPO_ROOT.parent / "shared" / "data", Path("data")]
    for base in candidates:
        found = _resolve(base.expanduser(), name)
        if found is not None:
            return found
        tried.append(base / name)
    raise MMKGError(_missing_message(name, tried))


def _missing_message(name: str, tried: list[Path]) -> str:
    where = ", ".join(str(p) for p in tried)
    if name == "ml-100k":
        expected = f"{name}/ with {ML100K_FILES}; get {ML100K_SOURCES}"
    else:
        expected = f"a {name}/ folder"
    return f"no {name} data found (tried {where}); expected {expected}; pass --data-dir or set {ENV_VAR}"
