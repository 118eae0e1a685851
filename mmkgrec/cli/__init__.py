"""The command-line scripts as modules of the package: ``mmkgrec.cli.train``, ``mmkgrec.cli.evaluate`` and
``mmkgrec.cli.explain`` are the repository's ``train.py``, ``evaluate.py`` and ``explain.py`` (the entry points of
the ``mmkgrec-train`` / ``mmkgrec-evaluate`` / ``mmkgrec-explain`` console scripts).

A wheel carries the three files in this folder (``package-dir`` in pyproject.toml maps ``mmkgrec.cli`` to the
repository root when building, so nothing installs top-level modules named ``train`` / ``evaluate`` /
``explain``, names other distributions own). In a checkout or an editable install, this file (which the wheel
does not carry) adds the repository root to the package's search path, so the same names import the scripts in
place.
"""

from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent.parent
if all((_ROOT / f"{name}.py").is_file() for name in ("train", "evaluate", "explain")):
    __path__.append(str(_ROOT))  # noqa: F821 (a package's __path__)
