"""Running lm-evaluation-harness offline on local tasks, for our model and transformers'.

:func:`evaluate` runs one task of a local task folder (YAML files whose data are on disk)
through ``lm_eval.simple_evaluate`` with the network off (``HF_DATASETS_OFFLINE``,
``HF_HUB_OFFLINE``): nothing is downloaded, a task whose data is not there fails. Relative
``data_files`` in a task YAML are read from the task folder. It returns the task's
metrics and, per document, the log-likelihood the model gave each answer choice, so that
two models can be compared item by item, not only by their scores.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from paperkb.errors import PaperkbError

OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@contextlib.contextmanager
def offline(tasks_dir: Path, cache_dir: Path | None) -> Iterator[None]:
    """No network, relative data files read from ``tasks_dir``, the datasets cache in
    ``cache_dir`` (the run folder), all restored afterwards."""
    saved = {k: os.environ.get(k) for k in (*OFFLINE_ENV, "HF_DATASETS_CACHE")}
    cwd = os.getcwd()
    os.environ.update(OFFLINE_ENV)
    if cache_dir is not None:
        os.environ["HF_DATASETS_CACHE"] = str(cache_dir)
    os.chdir(tasks_dir)
    try:
        yield
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def evaluate(
    lm: Any,
    task: str,
    tasks_dir: str | Path,
    *,
    num_fewshot: int = 0,
    limit: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, float], list[list[float]]]:
    """``(metrics, per_doc_loglikelihoods)`` of ``lm`` (an lm-eval model object) on ``task``.

    ``metrics``: the harness's numbers for the task (``acc``, ``acc_norm``, ...; stderr
    left out). ``per_doc_loglikelihoods``: for multiple-choice tasks, the log-likelihood of
    each choice, per document in the harness's order."""
    tasks_dir = Path(tasks_dir).resolve()
    with offline(tasks_dir, Path(cache_dir) if cache_dir else None):
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager

        manager = TaskManager(include_path=str(tasks_dir), include_defaults=False)
        if task not in manager.all_tasks:
            known = ", ".join(sorted(manager.all_tasks)[:10]) or "none"
            raise PaperkbError(f"no lm-eval task {task!r} in {tasks_dir} (it has: {known})")
        out = simple_evaluate(
            model=lm,
            tasks=[task],
            num_fewshot=num_fewshot,
            limit=limit,
            task_manager=manager,
            log_samples=True,
            bootstrap_iters=0,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    if out is None:
        raise PaperkbError("lm-eval returned no results")
    metrics = {}
    for key, value in (out["results"].get(task) or {}).items():
        name = key.split(",")[0]
        if "stderr" in name or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if math.isfinite(float(value)):
            metrics[name] = float(value)
    samples = sorted(out.get("samples", {}).get(task) or [], key=lambda s: s.get("doc_id", 0))
    lls = [[float(r[0][0]) for r in s.get("resps") or []] for s in samples]
    return metrics, lls
