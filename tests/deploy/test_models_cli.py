"""``chatrlhf models``: register, list, show, promote (gated), rollback and split through the CLI."""

from click.testing import CliRunner

from chatrlhf.cli import cli
from chatrlhf.store import Store

GOOD = {"harmful_refusal_rate": 1.0, "over_refusal_rate": 0.0, "challenge_rate": 0.5, "pushback_gold": 0.6}


def _run(db, *args, ok=True):
    r = CliRunner().invoke(cli, ["models", *args, "--db", db])
    assert (r.exit_code == 0) == ok, r.output
    return r.output


def test_register_list_show_promote_rollback(db_url):
    _run(db_url, "register", "base", "smollm2", "--kind", "base")
    _run(db_url, "register", "sft", "/runs/a/sft", "--kind", "sft", "--parent", "base")
    _run(db_url, "register", "ppo1", "/runs/a/ppo", "--kind", "ppo", "--parent", "sft")
    assert "no model version 'ghost'" in _run(db_url, "register", "x", "/x", "--parent", "ghost", ok=False)
    out = _run(db_url, "list").splitlines()
    assert out[0].split() == ["NAME", "KIND", "PARENT", "STATUS", "CREATED"]
    assert out[2].split()[:4] == ["sft", "sft", "base", "candidate"]

    assert "gates skipped" in _run(db_url, "promote", "sft", "--no-gate", "--report", "first release")
    assert "--no-gate needs --report" in _run(db_url, "promote", "ppo1", "--no-gate", ok=False)
    _run(db_url, "promote", "ppo1", "--no-gate", "--report", "hotfix")
    out = _run(db_url, "list")
    assert [ln.split()[:2] for ln in out.splitlines() if ln.startswith("*")] == [["*", "ppo1"]]

    show = _run(db_url, "show", "ppo1")
    assert "lineage: base -> sft -> ppo1" in show and "ppo, active, served" in show
    assert "no model version 'ghost'" in _run(db_url, "show", "ghost", ok=False)
    assert "no model version 'ghost'" in _run(db_url, "promote", "ghost", "--no-gate", "--report", "x", ok=False)

    assert "rolled back from ppo1 to sft" in _run(db_url, "rollback")
    assert "no earlier version than 'sft'" in _run(db_url, "rollback", ok=False)
    store = Store(db_url)
    assert store.current_deployment().version == "sft"
    assert store.get_model_version("ppo1").status == "archived"
    store.dispose()


def test_rollback_with_nothing_deployed_fails(db_url):
    assert "nothing has been deployed" in _run(db_url, "rollback", ok=False)


def test_promote_runs_the_gates_and_refuses_a_regressed_candidate(db_url):
    store = Store(db_url)
    store.upgrade()
    store.add_model_version("v1", "/v1", meta={"eval": GOOD})
    store.add_model_version("v2", "/v2", parent="v1",
                            meta={"eval": {**GOOD, "over_refusal_rate": 0.2, "win_rate_vs": {"v1": 0.7}}})
    store.add_model_version("v3", "/v3", parent="v1", meta={"eval": {**GOOD, "win_rate_vs": {"v1": 0.6}}})
    _run(db_url, "promote", "v1")  # nothing served: promoted without gates
    out = _run(db_url, "promote", "v2", "--optional", "outside_harmful_safe", "--optional",
               "outside_benign_answered", ok=False)
    assert "**refused** `v2` vs `v1`: failed over_refusal" in out and "| over_refusal | 0.200 | 0.000 |" in out
    assert "marked rejected" in out
    assert store.get_model_version("v2").status == "rejected"
    # without outside evaluations the outside gates fail closed
    out = _run(db_url, "promote", "v3", "--dry-run", ok=True)
    assert "no outside evaluation for either version" in out and "would be refused" in out
    out = _run(db_url, "promote", "v3", "--optional", "outside_harmful_safe", "--optional",
               "outside_benign_answered", "--report", "release 3")
    assert "promoted v3" in out and store.current_deployment().version == "v3"
    assert "release 3" in store.current_deployment().report
    assert "last gate decision:" in _run(db_url, "show", "v2")
    assert "unknown gate" in _run(db_url, "promote", "v2", "--optional", "outside", ok=False)
    store.dispose()


def test_split(db_url):
    _run(db_url, "register", "a", "/a")
    _run(db_url, "register", "b", "/b")
    assert "serving a=0.9, b=0.1 (default a)" in _run(db_url, "split", "a=0.9", "b=0.1")
    out = _run(db_url, "list")
    assert "*90%" in out and "*10%" in out
    assert "expected NAME=WEIGHT" in _run(db_url, "split", "a=0.9", "b", ok=False)
    assert "at least two" in _run(db_url, "split", "a=1", ok=False)
    assert "no model version 'c'" in _run(db_url, "split", "a=1", "c=1", ok=False)
