"""Promotion gates: a regressed candidate is refused with the check named, a good one passes,
missing metrics fail closed; and the metrics they read from an evaluation's results.json."""

import pytest

from chatrlhf.deploy import gates, registry
from chatrlhf.deploy.gates import Decision, GateConfig, decide

CURRENT = {"harmful_refusal_rate": 0.9, "over_refusal_rate": 0.1, "challenge_rate": 0.6, "pushback_gold": 0.7,
           "outside_harmful_safe_rate": 0.8, "outside_benign_answered_rate": 0.9}


def _good(**over):
    return {**CURRENT, "head_to_head_win_rate": 0.6, **over}


def test_good_candidate_passes_every_gate():
    d = decide(_good(), CURRENT, GateConfig())
    assert d.promote and [c.name for c in d.checks] == list(gates.GATE_NAMES)
    assert all(c.passed for c in d.checks)
    # a regression within the margin still passes
    assert decide(_good(over_refusal_rate=0.14, challenge_rate=0.56), CURRENT).promote


def test_over_refusal_up_is_refused_with_that_check_named():
    d = decide(_good(over_refusal_rate=0.3), CURRENT, GateConfig(), names=("ppo2", "ppo1"))
    assert not d.promote
    (bad,) = d.failed
    assert (bad.name, bad.candidate_value, bad.current_value) == ("over_refusal", 0.3, 0.1)
    assert bad.limit == pytest.approx(0.15)
    report = d.report()
    assert report.startswith("**refused** `ppo2` vs `ppo1`: failed over_refusal")
    assert "| over_refusal | 0.300 | 0.100 | 0.150 | FAIL |" in report
    assert "| harmful_refusal | 0.900 | 0.900 | 0.850 | pass |" in report


@pytest.mark.parametrize("key, gate", [("harmful_refusal_rate", "harmful_refusal"), ("challenge_rate", "challenge"),
                                       ("pushback_gold", "sycophancy"),
                                       ("outside_harmful_safe_rate", "outside_harmful_safe"),
                                       ("outside_benign_answered_rate", "outside_benign_answered")])
def test_a_drop_in_any_safety_rate_is_refused(key, gate):
    d = decide(_good(**{key: CURRENT[key] - 0.2}), CURRENT)
    assert [c.name for c in d.failed] == [gate]


def test_win_rate_must_beat_the_margin():
    d = decide(_good(head_to_head_win_rate=0.5), CURRENT, GateConfig(min_win_rate=0.52))
    assert [c.name for c in d.failed] == ["win_rate"] and "0.500 < 0.520" in d.failed[0].why
    assert decide(_good(head_to_head_win_rate=0.52), CURRENT, GateConfig(min_win_rate=0.52)).promote


def test_missing_metrics_fail_closed_unless_optional():
    cand = {k: v for k, v in _good().items() if not k.startswith("outside")}
    d = decide(cand, CURRENT)
    assert not d.promote
    assert {c.name: c.why for c in d.failed} == {
        "outside_harmful_safe": "no outside evaluation for candidate",
        "outside_benign_answered": "no outside evaluation for candidate"}
    d = decide(cand, CURRENT, GateConfig(optional=("outside_harmful_safe", "outside_benign_answered")))
    assert d.promote and "skipped (optional)" in d.report()
    # no head-to-head win rate, a None rate (no prompts of that family) on the current side
    d = decide({k: v for k, v in _good().items() if k != "head_to_head_win_rate"},
               {**CURRENT, "challenge_rate": None})
    assert {c.name: c.why for c in d.failed} == {
        "win_rate": "no head-to-head gold win rate for candidate vs current",
        "challenge": "no simulator: false-premise challenge for current"}
    assert not decide({}, {}).promote
    with pytest.raises(ValueError, match="unknown gate"):
        GateConfig(optional=("outside",))


RESULTS = {
    "models": {
        "sft": {"gold": 0.5, "harmful_refusal_rate": 1.0, "over_refusal_rate": 0.0, "challenge_rate": 0.5,
                "gold_by_family": {"pushback": 0.6}, "n": 20},
        "ppo": {"gold": 0.6, "harmful_refusal_rate": 1.0, "over_refusal_rate": 0.5, "challenge_rate": None,
                "gold_by_family": {"pushback": 0.7}, "n": 20},
    },
    "win_rates": {"ppo_vs_sft": {"win_rate": 0.625}, "sft_vs_base": {"win_rate": 0.7}},
    "outside": {"models": {"ppo": {"harmful_safe_rate": 0.5, "benign_answered_rate": 0.75}}},
}


def test_metrics_from_results():
    m = gates.metrics_from_results(RESULTS, "ppo")
    assert m == {"gold": 0.6, "harmful_refusal_rate": 1.0, "over_refusal_rate": 0.5, "n": 20,
                 "pushback_gold": 0.7, "outside_harmful_safe_rate": 0.5, "outside_benign_answered_rate": 0.75,
                 "win_rate_vs": {"sft": 0.625}}  # challenge_rate None: left out
    assert gates.metrics_from_results(RESULTS, "sft")["win_rate_vs"] == {"ppo": 0.375, "base": 0.7}
    with pytest.raises(KeyError, match="no model 'ppo-2'"):
        gates.metrics_from_results(RESULTS, "ppo-2")
    assert gates.stage_eval("ppo3") == ("eval-3", "ppo") and gates.stage_eval("sft") == ("eval", "sft")
    with pytest.raises(ValueError):
        gates.stage_eval("rm1")


def _versions(store, cand_eval, cur_eval):
    registry.register(store, "v1", "/v1", meta={"eval": cur_eval})
    registry.register(store, "v2", "/v2", parent="v1", meta={"eval": cand_eval})


def test_gate_and_promote_rejects_a_regressed_version(store):
    _versions(store, {**CURRENT, "over_refusal_rate": 0.3, "win_rate_vs": {"v1": 0.7}}, CURRENT)
    first = gates.gate_and_promote(store, "v1")  # nothing served: nothing to beat
    assert first.promote and registry.current(store).version == "v1"
    d = gates.gate_and_promote(store, "v2", actor="ci")
    assert not d.promote and [c.name for c in d.failed] == ["over_refusal"]
    v2 = store.get_model_version("v2")
    assert v2.status == "rejected" and v2.meta["gate"]["promote"] is False
    assert "over_refusal" in v2.meta["gate"]["report"]
    assert registry.current(store).version == "v1"


def test_gate_and_promote_promotes_and_logs_the_report(store):
    # the head-to-head win rate can come from the current version's evaluation (1 - its rate)
    _versions(store, CURRENT, {**CURRENT, "win_rate_vs": {"v2": 0.3}})
    registry.promote(store, "v1")
    assert gates.gate_and_promote(store, "v2", dry_run=True).promote
    assert registry.current(store).version == "v1"  # a dry run changes nothing
    d = gates.gate_and_promote(store, "v2", note="weekly release")
    assert d.promote and d.checks[0].candidate_value == pytest.approx(0.7)
    dep = registry.current(store)
    assert dep.version == "v2" and dep.report.startswith("**promote** `v2` vs `v1`") and "weekly release" in dep.report
    with pytest.raises(registry.RegistryError, match="already served"):
        gates.gate_and_promote(store, "v2")


def test_decision_report_without_checks():
    assert Decision(True).report().startswith("**promote**")
