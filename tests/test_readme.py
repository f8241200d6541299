"""The README opens with the two set-up commands, and CI runs the second one."""

from __future__ import annotations

import re


def test_ci_runs_the_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    main_job, test_command = blocks[0].strip(), blocks[1].strip()
    assert "torch==2.13.0" in main_job and "--vault notes" in main_job
    assert main_job.index("torch==2.13.0") < main_job.index("pip install -e '.[repro]'")  # `run` needs torch
    assert "pytest" in test_command and "'.[test]'" in test_command
    ci = (repo_root / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci
    lint = ci[ci.index(test_command):]  # the linters run after the tests
    assert "ruff check" in lint and "ruff format --check" in lint and "mypy" in lint


def test_the_base_install_is_the_knowledge_base_only(repo_root):
    import tomllib

    project = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    heavy = ("torch", "transformers", "matplotlib", "safetensors", "triton")
    assert not [d for d in project["dependencies"] if d.split(">")[0].split("=")[0].strip() in heavy]
    assert any(d.startswith("torch") for d in project["optional-dependencies"]["repro"])
    assert "paperkb[repro]" in project["optional-dependencies"]["test"]


def _layout_paths(readme: str) -> set[str]:
    """The backticked paths in the first column of the README's layout table."""
    section = readme.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.M))


def test_the_layout_table_lists_every_package_and_every_doc(repo_root):
    listed = _layout_paths((repo_root / "README.md").read_text(encoding="utf-8"))
    packages = {
        f"{init.parent.relative_to(repo_root).as_posix()}/"
        for top in ("paperkb", "kb", "repro", "cli")
        for init in (repo_root / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    docs = {f"docs/{page.name}" for page in (repo_root / "docs").glob("*.md")}
    assert "repro/finetune/" in packages and "docs/verdicts.md" in docs  # the walk finds what it should
    missing = sorted((packages | docs) - listed)
    assert not missing, f"README's layout table does not list: {', '.join(missing)}"
    gone = sorted(p for p in listed if not (repo_root / p).exists())
    assert not gone, f"README's layout table lists paths that do not exist: {', '.join(gone)}"
