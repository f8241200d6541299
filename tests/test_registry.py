"""The experiments registry: declarations, parameters, checks and verdicts."""

from __future__ import annotations

import pytest

from repro import registry
from repro.registry import Control, Param, Preset, Requirements, RegistryError, RunContext


def _declare(id_: str, fn=None, **kw):
    def default(ctx):
        ctx.log_metric("x", ctx.params["n"] * 2)
        ctx.check("x_is_even", ctx.params["n"] * 2 % 2, "==", 0)
        return ctx.result()

    exp = registry.Experiment(
        id=id_,
        description="test",
        fn=fn or default,
        params=(Param("n", int, 3, "a number"), Param("mode", str, "a", choices=("a", "b"))),
        presets=kw.get("presets") or {"smoke": Preset({"n": 1}), "full": Preset({"n": 10}, Requirements(device="cuda"))},
        module="tests",
        controls=(Control("odd", "doubles into an odd number"),),
    )
    return registry.register(exp)


def test_resolve_params_defaults_preset_and_overrides():
    exp = _declare("test/params")
    assert exp.resolve_params("smoke") == {"n": 1, "mode": "a"}
    assert exp.resolve_params("full", {"n": "7", "mode": "b"}) == {"n": 7, "mode": "b"}


@pytest.mark.parametrize(
    "override, message",
    [({"n": "seven"}, "expects int"), ({"mode": "c"}, "must be one of"), ({"zzz": "1"}, "no parameter 'zzz'")],
)
def test_bad_params_are_refused_with_a_clear_message(override, message):
    exp = _declare("test/params-bad")
    with pytest.raises(RegistryError, match=message):
        exp.resolve_params("smoke", override)


def test_unknown_preset():
    exp = _declare("test/preset")
    with pytest.raises(RegistryError, match="no preset 'huge'"):
        exp.resolve_params("huge")


def test_declaration_needs_both_presets_and_known_params():
    with pytest.raises(RegistryError, match="lacks the 'full' preset"):
        _declare("test/no-full", presets={"smoke": Preset()})
    with pytest.raises(RegistryError, match="unknown parameters"):
        _declare("test/bad-preset", presets={"smoke": Preset({"q": 1}), "full": Preset()})


def test_bool_list_float_parsing():
    assert Param("b", bool, False).parse("yes") is True
    assert Param("b", bool, False).parse("off") is False
    assert Param("l", list, []).parse("1,2.5,x") == [1, 2.5, "x"]
    with pytest.raises(RegistryError):
        Param("f", float, 0.0).parse("nan")
    with pytest.raises(RegistryError):
        Param("b", bool, False).parse("maybe")


def test_checks_decide_the_verdict_and_can_fail():
    ctx = RunContext({})
    assert ctx.check("ok", 1.0, "<=", 2.0)
    assert ctx.result().verdict == "supported"
    assert not ctx.check("too big", 5.0, "between", (1, 4))
    res = ctx.result()
    assert res.verdict == "contradicted"
    assert [c["passed"] for c in res.to_dict()["checks"]] == [True, False]


def test_nan_never_passes():
    ctx = RunContext({})
    ctx.check("nan", float("nan"), ">=", 0)
    assert ctx.result().verdict == "contradicted"


def test_an_experiment_without_checks_cannot_support_a_claim():
    with pytest.raises(RegistryError, match="stated no check"):
        RunContext({}).result()


def test_run_inline_and_unknown_ids():
    _declare("test/inline")
    res = registry.run_inline("test/inline", "smoke")
    assert res.verdict == "supported"
    assert res.metrics[0].name == "x" and res.metrics[0].value == 2.0
    with pytest.raises(RegistryError, match="unknown experiment"):
        registry.get("test/does-not-exist")


def test_same_id_from_two_places_is_refused():
    _declare("test/dup")

    def other(ctx):  # a different function under the same id
        return ctx.result()

    with pytest.raises(RegistryError, match="declared twice"):
        _declare("test/dup", fn=other)
