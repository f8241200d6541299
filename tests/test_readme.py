"""The README opens with the two set-up commands, and CI runs the second one."""

from __future__ import annotations

import re


def test_ci_runs_the_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    main_job, test_command = blocks[0].strip(), blocks[1].strip()
    assert "torch==2.13.0" in main_job and "--vault notes" in main_job
    assert main_job.index("torch==2.13.0") < main_job.index("pip install -e .")
    assert "pytest" in test_command
    ci = (repo_root / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci
