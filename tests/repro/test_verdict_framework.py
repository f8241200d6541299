"""Issue 20, the framework: a note cannot manufacture a verdict (params:: need expect::,
nothing malformed or unknown is dropped, thresholds cannot be set from a note), declared
metrics, stochastic experiments decided over declared seeds (a --seed run decides nothing),
controls under each claim's own parameters, and runs side by side."""

from __future__ import annotations

import json
import time

import pytest
from repro_testkit import fake_experiments
from typer.testing import CliRunner

from cli.app import app
from kb.claimspec import PARAMS_WITHOUT_EXPECT, parse_expect
from repro import registry
from repro.claimcheck import claim_errors
from repro.registry import Control, Metric, Param, Preset, RegistryError, SeedRule
from repro.status import CONTRADICTED, SMALL_SCALE, STATUS_ERROR, UNVERIFIED, ClaimRef, claim_statuses
from repro.tracker import ERROR, FAILED, INTERRUPTED, PASSED, Tracker

BERT = "d_model=768, n_layers=12, d_ff=3072, n_heads=12, vocab_size=30522, learned_positions=512, token_types=2, embedding_norm=true, pooler=true"


def _claim(cid, *exps, **kw):
    return ClaimRef(id=cid, statement=cid, experiments=list(exps), note="A.md", title="A", line=3, **kw)


def _bert(expect: str | None = None, **extra) -> ClaimRef:
    from kb.claimspec import parse_params

    params = {**parse_params(BERT), **extra}
    return _claim("bert", "transformer/param-count", params=params, expect=parse_expect(expect) if expect else [])


# ---- what a claim may say -------------------------------------------------------------------
def test_a_claim_is_checked_against_the_declarations():
    assert claim_errors(_bert("params_millions ≈ 110 ± 2%")) == []
    assert claim_errors(_bert()) == [PARAMS_WITHOUT_EXPECT]
    [threshold] = claim_errors(_bert("params_millions ≈ 110 ± 2%", vocab_precision=5000))
    assert "cannot set 'vocab_precision': it is a threshold of transformer/param-count" in threshold
    [unknown] = claim_errors(_bert("params_millions ≈ 110 ± 2%", n_experts=8))
    assert "has no parameter 'n_experts' (known: vocab_size, vocab_precision, d_model" in unknown
    [metric] = claim_errors(_bert("param_count ≈ 110 ± 2%"))
    assert "records no metric 'param_count' (known: params, params_millions, params_{model}" in metric
    [bounds] = claim_errors(_bert("params_millions ≈ 110 ± 2%", n_layers=10**9))
    assert "'n_layers' must lie in [0, 1000]" in bounds
    [typed] = claim_errors(_bert("params_millions ≈ 110 ± 2%", d_model="wide"))
    assert "'d_model' expects int" in typed
    [exp] = claim_errors(_claim("x", "transformer/param-counts"))
    assert "unknown experiment 'transformer/param-counts' (did you mean transformer/param-count" in exp
    assert "llama/param-count" in exp  # the known ids are listed
    # a metric family declared with a placeholder covers its members
    assert claim_errors(_claim("l", "llama/param-count", expect=parse_expect("params_70B ≈ 69e9 ± 2%"))) == []


def test_every_logged_metric_name_is_declared_and_an_undeclared_one_is_reported():
    def fn(ctx):
        ctx.log_metric("loss", 1.0)
        ctx.log_metric("acc_top5", 0.5)
        ctx.log_metric("surprise", 2.0)
        ctx.check("ok", 1.0, "==", 1.0)
        return ctx.result()

    registry.register(
        registry.Experiment(
            "test/declared",
            "d",
            fn,
            presets={"smoke": Preset(), "full": Preset()},
            controls=(Control("c", "broken"),),
            metrics=(Metric("loss"), Metric("acc_top{k}")),
        )
    )
    result = registry.run_inline("test/declared")
    assert result.undeclared_metrics == ["surprise"] and result.to_dict()["undeclared_metrics"] == ["surprise"]


def test_the_registry_refuses_bad_seed_and_bound_declarations():
    def fn(ctx):
        return ctx.result()

    base = dict(presets={"smoke": Preset(), "full": Preset()}, controls=(Control("c", "broken"),))
    with pytest.raises(RegistryError, match="at least 3 decide a claim"):
        registry.register(
            registry.Experiment("test/two-seeds", "d", fn, stochastic=True, seeds={"smoke": (0, 1)}, **base)
        )
    with pytest.raises(RegistryError, match="not stochastic"):
        registry.register(registry.Experiment("test/seeds-not-stochastic", "d", fn, seeds={"smoke": (0, 1, 2)}, **base))
    with pytest.raises(RegistryError, match="unknown presets"):
        registry.register(
            registry.Experiment("test/seed-preset", "d", fn, stochastic=True, seeds={"huge": (0, 1, 2)}, **base)
        )
    bounded = (Param("n", int, 4, bounds=(1, 8)),)
    bad_preset = {"smoke": Preset(params={"n": 99}), "full": Preset()}
    with pytest.raises(RegistryError, match="must lie in"):
        registry.register(
            registry.Experiment(
                "test/out-of-bounds", "d", fn, params=bounded, presets=bad_preset, controls=base["controls"]
            )
        )
    assert SeedRule().text(3) == "every one of 3 seeds passes"
    assert (
        SeedRule(min_fraction=0.8).needed(5) == 4 and SeedRule(min_fraction=0.8).text(5) == "at least 4 of 5 seeds pass"
    )


def test_every_declared_experiment_states_its_metrics_and_the_stochastic_ones_their_seeds():
    for exp in registry.load_all().values():
        if exp.module not in registry.BUILTIN_MODULES:
            continue  # the test suite's own experiments
        assert exp.metrics, exp.id
        if exp.stochastic:
            assert len(exp.seeds_for("smoke")) >= 3 and len(exp.seeds_for("full")) >= 3, exp.id


# ---- check, before anything runs ------------------------------------------------------------
NOTE = f"""# Claims

> [!claim] BERT-base has 500M parameters.
> experiment:: transformer/param-count
> params:: {BERT}

^bert-no-expect

> [!claim] Llama 2 7B has 6.74B parameters.
> experiment:: llama/param-count
> expect:: params_7B ≈ 6.74e9 ; broken ==

^malformed

> [!claim] A typo in the experiment.
> experiment:: transformer/param-counts

^unknown-exp

> [!claim] An unknown parameter.
> experiment:: transformer/param-count
> params:: d_model=768, n_experts=8
> expect:: params_millions ≈ 110 ± 2%

^unknown-param

> [!claim] A note sets the tolerance.
> experiment:: transformer/param-count
> params:: vocab_precision=5000
> expect:: params_base_millions ≈ 65 ± 1%

^threshold
"""


def test_check_reports_every_bad_claim_before_anything_runs(tmp_path):
    (tmp_path / "N.md").write_text(NOTE, encoding="utf-8")
    result = CliRunner().invoke(app, ["--vault", str(tmp_path), "check", "--format", "json"])
    assert result.exit_code == 1, result.output
    errors = [p for p in json.loads(result.stdout) if p["severity"] == "error"]
    text = "\n".join(f"{p['line']}: {p['message']}" for p in errors)
    assert f"3: claim 'bert-no-expect': {PARAMS_WITHOUT_EXPECT}" in text
    assert "11: claim 'malformed': expect:: 'params_7B ≈ 6.74e9': ≈ needs a tolerance" in text
    assert "15: claim 'unknown-exp' names unknown experiment 'transformer/param-counts' (known: " in text
    assert "has no parameter 'n_experts'" in text
    assert "cannot set 'vocab_precision'" in text
    assert not (tmp_path / ".paperkb" / "runs.db").exists()
    # and the words, with no run at all, are "error" with the reason
    words = {
        c["id"]: c
        for c in json.loads(CliRunner().invoke(app, ["--vault", str(tmp_path), "claims", "-f", "json"]).stdout)
    }
    assert {k: v["status"] for k, v in words.items()} == dict.fromkeys(words, STATUS_ERROR)
    assert words["bert-no-expect"]["reason"] == PARAMS_WITHOUT_EXPECT
    assert words["malformed"]["reason"].startswith("line 11: expect::")
    # run refuses such a claim by id (exit 1), before anything runs
    refused = CliRunner().invoke(app, ["--vault", str(tmp_path), "run", "threshold"])
    assert refused.exit_code == 1 and "cannot be judged as written" in refused.output
    assert not (tmp_path / ".paperkb" / "runs.db").exists()


def test_a_claim_with_params_is_judged_on_its_expect_alone():
    def fn(ctx):
        ctx.log_metric("count", 100.0 + ctx.params["extra"])
        ctx.check("paper_threshold", 100.0 + ctx.params["extra"], "<=", 100.0)  # about the default config
        return ctx.result()

    registry.register(
        registry.Experiment(
            "test/own-checks",
            "d",
            fn,
            params=(Param("extra", float, 0.0),),
            presets={"smoke": Preset(), "full": Preset()},
            controls=(Control("c", "broken"),),
            metrics=(Metric("count"),),
        )
    )
    result = registry.run_inline("test/own-checks", expect=parse_expect("count ≈ 110 ± 1%"), extra=10.0)
    assert result.verdict == "supported"  # the experiment's own threshold failed, but is not the claim's
    own = next(c for c in result.checks if c.name == "paper_threshold")
    assert not own.passed and own.counts is False
    assert registry.run_inline("test/own-checks", expect=parse_expect("count ≈ 500 ± 2%"), extra=10.0).verdict == (
        "contradicted"
    )


# ---- seeds decide, by the stated rule; a --seed run never does -------------------------------
def _seeded(t, exp, status, seed, group, seeds=(0, 1, 2), need=3, **kw):
    run = t.create_run(
        exp,
        preset="smoke",
        params={},
        scale="smoke",
        seed=seed,
        seed_set={"group": group, "seeds": list(seeds), "need": need, "rule": f"{need} of {len(seeds)}"}
        if group
        else kw.pop("seed_set", {}),
        **kw,
    )
    t.mark_running(run.id, None)
    check = {"name": "c", "value": 1.0, "op": "<=", "threshold": 2.0, "passed": status == PASSED, "evidence": "direct"}
    t.finish(run.id, status, verdict={PASSED: "supported", FAILED: "contradicted"}.get(status), checks=[check])
    time.sleep(0.002)
    return run.id


def test_stochastic_claims_are_decided_over_a_complete_seed_set(tmp_path):
    with Tracker(tmp_path) as t:
        all_pass = [_seeded(t, "s/all", PASSED, s, "g1") for s in (0, 1, 2)]
        _seeded(t, "s/all", FAILED, 3, None, seed_set={"explicit": True})  # --seed 3: decides nothing
        _seeded(t, "s/all", FAILED, 0, None)  # a lone run of a stochastic experiment decides nothing
        one_fails = [_seeded(t, "s/rule", st, s, "g2", need=2) for s, st in ((0, PASSED), (1, FAILED), (2, PASSED))]
        strict = [_seeded(t, "s/strict", st, s, "g3") for s, st in ((0, PASSED), (1, FAILED), (2, PASSED))]
        older = [_seeded(t, "s/partial", PASSED, s, "g4") for s in (0, 1, 2)]
        _seeded(t, "s/partial", FAILED, 0, "g5")
        _seeded(t, "s/partial", INTERRUPTED, 1, "g5")  # incomplete set: the older complete one decides
        _seeded(t, "s/err", PASSED, 0, "g6")
        _seeded(t, "s/err", ERROR, 1, "g6")
        _seeded(t, "s/err", PASSED, 2, "g6")
        _seeded(t, "s/lone", PASSED, 0, None)
    claims = [_claim(c, f"s/{c}") for c in ("all", "rule", "strict", "partial", "err", "lone")]
    exps = fake_experiments(claims, stochastic={f"s/{c}" for c in ("all", "rule", "strict", "partial", "err", "lone")})
    st = claim_statuses(tmp_path, claims, experiments=exps)
    assert {k: v["status"] for k, v in st.items()} == {
        "all": SMALL_SCALE,
        "rule": SMALL_SCALE,  # 2 of 3 passed, the set's rule asks 2
        "strict": CONTRADICTED,
        "partial": SMALL_SCALE,
        "err": STATUS_ERROR,
        "lone": UNVERIFIED,
    }
    assert st["all"]["deciding_runs"] == all_pass and st["rule"]["deciding_runs"] == one_fails
    assert st["strict"]["deciding_runs"] == strict and st["partial"]["deciding_runs"] == older
    assert st["rule"]["experiments"]["s/rule"]["seed_brief"] == "seeds 0,1,2: 2/3 passed (2 of 3)"
    # the same runs, read as a deterministic experiment's: still never the --seed run
    det = claim_statuses(tmp_path, claims[:1], experiments=fake_experiments(claims[:1]))
    assert det["all"]["status"] == CONTRADICTED and det["all"]["deciding_runs"] != all_pass  # the newest plain run


@pytest.mark.slow
@pytest.mark.usefixtures("repro_env")
def test_seed_sets_controls_under_the_claims_params_and_deciding_runs_end_to_end(tmp_path, monkeypatch):
    claims = [
        _claim("c-coin", "test/coin"),
        # judged on its expect:: alone; the "break" control leaves the logged loss as it was,
        # so under this claim's parameters the control cannot fail
        _claim("c-weak", "test/ok", params={"steps": 3}, expect=parse_expect("loss < 100")),
    ]
    monkeypatch.setattr("repro.status.vault_claims", lambda root, **filters: claims)

    def cli(*args):
        return CliRunner().invoke(app, ["--vault", str(tmp_path), *args], catch_exceptions=False)

    def words():
        return {c["id"]: c for c in json.loads(cli("claims", "--format", "json").stdout)}

    assert cli("run", "c-coin").exit_code == 0
    before = words()["c-coin"]
    assert before["status"] == SMALL_SCALE and len(before["deciding_runs"]) == 3
    assert sorted(c["seed"] for c in before["checks"]) == [0, 1, 2]
    # a failing run at an explicit seed is recorded, and changes nothing
    assert cli("run", "test/coin", "--seed", "100").exit_code == 1
    after = words()["c-coin"]
    assert (after["status"], after["deciding_runs"]) == (before["status"], before["deciding_runs"])
    listed = cli("runs")
    assert "--seed 100: decides nothing" in listed.output
    # its control runs over the same seeds and ends contradicted: exit 0, shown beside this claim
    assert cli("run", "c-coin", "--controls").exit_code == 0
    [control] = words()["c-coin"]["controls"]
    assert control["ok"] and len(control["run_ids"]) == 3
    # the weak claim: supported by its own run, but its own control cannot fail -> error, exit 1
    assert cli("run", "c-weak").exit_code == 0
    assert words()["c-weak"]["status"] == SMALL_SCALE and words()["c-weak"]["controls"] == []
    # the verdict line names what the experiment counted, since the claim sets its own params::
    assert "counted: a halving curve from 4.0" in cli("claims", "--format", "tsv").output
    assert cli("run", "c-weak", "--controls").exit_code == 1
    weak = words()["c-weak"]
    assert weak["status"] == STATUS_ERROR and weak["reason"].startswith("this check cannot fail here: control break")
    # the coin claim's controls are its own: the weak claim's control run is not among them
    assert len(words()["c-coin"]["controls"]) == 1 and words()["c-coin"]["status"] == SMALL_SCALE
    table = cli("status")
    assert "this check cannot fail here" in table.output


# ---- side by side ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("repro_env")
def test_independent_runs_go_side_by_side_up_to_jobs(tmp_path):
    from repro.runner import RunOptions, Target, execute, plan, resolve_jobs

    targets = [Target("test/sleep"), Target("test/ok")]
    planned = plan(targets, RunOptions(params=["seconds=2"]))
    with Tracker(tmp_path) as t:
        a, b = execute(planned, t, jobs=2)
        assert a.status == PASSED and b.status == PASSED
        assert b.started < a.ended  # the second started while the first was still running
        c, d = execute(plan(targets, RunOptions(params=["seconds=0.5"])), t, jobs=1)
        assert d.started >= c.ended  # one at a time
    assert resolve_jobs(0) >= 1 and resolve_jobs(3) == 3


def test_run_help_keeps_full_and_paper_apart():
    result = CliRunner().invoke(app, ["run", "--help"], terminal_width=200)
    text = " ".join(result.output.replace("│", " ").split())
    assert "the largest setting this machine can run" in text and "the paper's setting; may need" not in text
    assert "paper (the paper's own setting and hardware: the only scale that can make a claim 'reproduced')" in text
    assert "--seed" in text and "decides no claim" in text


@pytest.mark.usefixtures("repro_env")
def test_plans_run_each_declared_seed_and_an_explicit_seed_once():
    from repro.runner import RunOptions, Target, plan_runs

    smoke, _ = plan_runs([Target("test/coin")], RunOptions())
    assert [p.seed for p in smoke] == [0, 1, 2] and len({p.seed_set["group"] for p in smoke}) == 1
    assert smoke[0].seed_set["need"] == 2 and smoke[0].seed_set["rule"] == "at least 2 of 3 seeds pass"
    full, _ = plan_runs([Target("test/coin")], RunOptions(preset="full"))
    assert [p.seed for p in full] == [0, 1, 2, 3, 4] and full[0].seed_set["need"] == 3
    [explicit] = plan_runs([Target("test/coin")], RunOptions(seed=7))[0]
    assert explicit.seed == 7 and explicit.seed_set == {"explicit": True}
    [plain] = plan_runs([Target("test/ok")], RunOptions())[0]
    assert plain.seed == 0 and plain.seed_set["seeds"] == [0]


def test_a_control_over_seeds_is_judged_by_the_seed_rule():
    from repro.runner import controls_exit_code, controls_not_contradicted
    from repro.tracker import Run

    def group(name, *statuses, need=3):
        seeds = list(range(len(statuses)))
        return [
            Run(
                f"{name}{i}",
                "e",
                "smoke",
                st,
                seed=i,
                control="c",
                seed_set={"group": name, "seeds": seeds, "need": need},
            )
            for i, st in enumerate(statuses)
        ]

    one_seed_fails = group("a", FAILED, PASSED, PASSED)  # every seed must pass: the set is contradicted
    assert controls_exit_code(one_seed_fails) == 0
    lenient = group("b", FAILED, PASSED, PASSED, need=2)  # 2 of 3 passed: the sabotage passes the rule
    assert controls_not_contradicted(lenient) == lenient and controls_exit_code(one_seed_fails + lenient) == 1
    assert controls_exit_code([Run("x", "e", "smoke", PASSED, control="c")]) == 1 and controls_exit_code([]) == 1


def test_every_metric_name_the_experiment_modules_log_is_declared_there():
    """Read from the source (no experiment runs): each ``ctx.log_metric("name", ...)`` of a
    declaration module, an f-string standing for its family, must match a metric that one of the
    module's experiments declares, so a claim's expect:: can name it and check can refuse others."""
    import ast
    import importlib
    import inspect

    exps = registry.load_all()
    missing = []
    for module in registry.BUILTIN_MODULES:
        mine = [e for e in exps.values() if e.module == module]
        tree = ast.parse(inspect.getsource(importlib.import_module(module)))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "log_metric" and node.args):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
            elif isinstance(arg, ast.JoinedStr):  # each {value} stands for a piece such as "x_y"
                name = "".join(v.value if isinstance(v, ast.Constant) else "x_y" for v in arg.values)
            else:
                continue
            if not any(e.declares_metric(name) for e in mine):
                missing.append(f"{module}:{node.lineno} {name}")
    assert missing == []


def test_the_exit_status_of_a_seed_set_follows_its_rule():
    from repro.runner import exit_code
    from repro.tracker import Run

    def group(name, *statuses, need):
        seeds = list(range(len(statuses)))
        return [
            Run(f"{name}{i}", "e", "smoke", st, seed=i, seed_set={"group": name, "seeds": seeds, "need": need})
            for i, st in enumerate(statuses)
        ]

    assert exit_code(group("a", PASSED, FAILED, PASSED, need=2)) == 0  # 2 of 3 is the rule: supported
    assert exit_code(group("b", PASSED, FAILED, PASSED, need=3)) == 1
    assert exit_code(group("c", PASSED, ERROR, PASSED, need=2)) == 3
    assert exit_code([Run("x", "e", "smoke", FAILED, seed_set={"explicit": True})]) == 1


@pytest.mark.slow  # imports torch: ~25 s on a loaded 2-core machine
def test_the_bert_500m_claim_is_contradicted_and_the_110m_one_supported():
    from kb.claimspec import parse_params

    params = parse_params(BERT)
    wrong = registry.run_inline("transformer/param-count", expect=parse_expect("params_millions ≈ 500 ± 2%"), **params)
    assert wrong.verdict == "contradicted" and wrong.checks[-1].name == "expect params_millions"
    right = registry.run_inline("transformer/param-count", expect=parse_expect("params_millions ≈ 110 ± 2%"), **params)
    assert right.verdict == "supported" and round(right.checks[-1].value, 2) == 109.48
    assert not right.undeclared_metrics


def test_experiments_json_lists_metrics_thresholds_bounds_and_seeds():
    described = registry.describe(registry.get("transformer/param-count"))
    params = {p["name"]: p for p in described["params"]}
    assert params["vocab_precision"]["threshold"] and params["n_layers"]["bounds"] == [0, 1000]
    assert {"name": "params_millions", "unit": "M", "meaning": "the counted stack, in millions"} in described["metrics"]
    assert described["scope"].startswith("token embeddings") and not described["stochastic"]
    copy = registry.describe(registry.get("transformer/copy-task"))
    assert copy["stochastic"] and copy["presets"]["smoke"]["seeds"] == [0, 1, 2]
    assert copy["presets"]["full"]["seeds"] == [0, 1, 2, 3, 4]
    assert copy["seed_rule"]["text"]["full"] == "every one of 5 seeds passes"


def test_side_by_side_runs_start_with_the_longest_last_time(tmp_path):
    from repro.runner import PlannedRun, longest_first

    def planned(exp):
        return PlannedRun(exp, [], "smoke", {}, {}, "cpu", 0, 1, 1, None, None)

    with Tracker(tmp_path) as t:
        for exp, took in (("e/short", 1.0), ("e/long", 30.0)):
            run = t.create_run(exp, preset="smoke", params={})
            t.finish(run.id, PASSED)
            t.conn.execute("UPDATE runs SET started = ended - ? WHERE id = ?", (took, run.id))
        queue = [(planned(e), None) for e in ("e/short", "e/long", "e/new")]
        assert [p.experiment for p, _ in longest_first(queue, t)] == ["e/new", "e/long", "e/short"]
