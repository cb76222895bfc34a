"""The core stays platform-agnostic: commerce/ never imports chat or scheduler libraries,
and aiohttp only under commerce/web/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = {"discord", "twitchio", "apscheduler", "bot", "scheduler", "dropcast"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def core_files() -> list[Path]:
    files = sorted((ROOT / "commerce").rglob("*.py"))
    assert files, "commerce/ has no Python files?"
    return files


def test_commerce_never_imports_chat_platforms_or_the_scheduler():
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN_IN_CORE)
        for path in core_files()
        if imported_modules(path) & FORBIDDEN_IN_CORE
    }
    assert offenders == {}


def test_aiohttp_is_only_used_by_the_web_package():
    web = ROOT / "commerce" / "web"
    offenders = [
        str(path.relative_to(ROOT))
        for path in core_files()
        if "aiohttp" in imported_modules(path) and web not in path.parents
    ]
    assert offenders == []


def test_the_checker_sees_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import discord.ext\nfrom apscheduler import x\nfrom . import y\n")
    assert imported_modules(sample) == {"discord", "apscheduler"}
