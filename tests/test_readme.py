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
