"""The layout rule: the code folders are mapped into ``keerpunt.*`` and never shadow stdlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_code_folders_have_no_init_py() -> None:
    for folder in ("platform", "consent", "triage", "settlement"):
        assert (ROOT / folder).is_dir()
        assert not (ROOT / folder / "__init__.py").exists(), f"{folder}/__init__.py shadows stdlib"
        assert (ROOT / folder / "py.typed").exists()


def test_stdlib_platform_still_imports_from_repository_root() -> None:
    code = "import platform; print(platform.system()); import keerpunt.platform.app"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() in {"Linux", "Darwin", "Windows"}


def test_templates_and_static_resolve_from_the_package_not_the_cwd(tmp_path: Path) -> None:
    code = (
        "from keerpunt.platform.settings import Settings;"
        "s = Settings.from_env({'KEERPUNT_DEMO': '1'});"
        "print(s.templates_dir); print(s.static_dir)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    templates, static = out.stdout.split()
    assert Path(templates, "base.html").exists()
    assert Path(static).is_dir()
