"""What the distribution installs: no top-level ``train`` / ``evaluate`` / ``explain`` modules (names other
distributions, such as Hugging Face's ``evaluate``, own); the scripts install as ``mmkgrec.cli.*`` and the
console scripts point there. Checked in pyproject.toml and in a wheel built from a copy of the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("train", "evaluate", "explain")
PACKAGES = ("kg", "encoders", "gnn", "training", "evaluation", "explanations", "mmkgrec")


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_pyproject_installs_no_top_level_script_modules() -> None:
    conf = pyproject()
    tool = conf["tool"]["setuptools"]
    assert not set(tool.get("py-modules", [])) & set(SCRIPTS)
    assert not set(tool["packages"]) & set(SCRIPTS)
    assert "mmkgrec.cli" in tool["packages"] and tool["package-dir"]["mmkgrec.cli"] == "."
    scripts = conf["project"]["scripts"]
    assert {scripts[f"mmkgrec-{s}"] for s in SCRIPTS} == {f"mmkgrec.cli.{s}:main" for s in SCRIPTS}
    assert all(target.split(":")[0].split(".")[0] not in SCRIPTS for target in scripts.values())


def test_the_scripts_import_as_mmkgrec_cli_modules_in_a_checkout() -> None:
    import mmkgrec.cli.evaluate
    import mmkgrec.cli.explain
    import mmkgrec.cli.train

    for module, name in ((mmkgrec.cli.train, "train"), (mmkgrec.cli.evaluate, "evaluate"),
                         (mmkgrec.cli.explain, "explain")):
        assert Path(module.__file__).resolve() == ROOT / f"{name}.py" and callable(module.main)


def test_the_wheel_holds_the_scripts_under_mmkgrec_cli_only(tmp_path) -> None:
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
    for name in (*[f"{s}.py" for s in SCRIPTS], "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(tmp_path / "whl"), str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "whl").glob("mmkgrec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0].removesuffix(".py") for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert not top & set(SCRIPTS), sorted(top)
    assert top == set(PACKAGES)
    assert {f"mmkgrec/cli/{s}.py" for s in SCRIPTS} <= set(names)
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert all(f"mmkgrec-{s} = mmkgrec.cli.{s}:main" in text for s in SCRIPTS)
