"""The model registry: versions and lineage in the store, promote, rollback and traffic splits."""

import pytest

from chatrlhf.deploy import registry
from chatrlhf.deploy.registry import RegistryError
from chatrlhf.store import records as R
from chatrlhf.store.store import Conflict, NotFound


def _chain(store):
    """base -> sft -> rm, sft -> ppo1 -> ppo2, as the pipeline registers them."""
    registry.register(store, "base", "smollm2", kind="base")
    registry.register(store, "sft", "runs/a/sft", kind="sft", parent="base",
                      meta={"data": {"demos.jsonl": "ab12"}})
    registry.register(store, "rm", "runs/a/reward", kind="rm", parent="sft")
    registry.register(store, "ppo1", "runs/a/ppo", kind="ppo", parent="sft", meta={"reward_model": "rm"})
    registry.register(store, "ppo2", "runs/a/ppo-2", kind="ppo", parent="ppo1")


def test_store_round_trips_parent_kind_and_meta(store):
    mv = store.add_model_version("v1", "/ckpt", kind="sft", parent=None, meta={"eval": {"gold": 0.5}},
                                 notes="first")
    got = store.get_model_version("v1")
    assert got == mv and (got.kind, got.parent, got.meta, got.status) == ("sft", None, {"eval": {"gold": 0.5}},
                                                                           "candidate")
    store.update_model_meta("v1", {"config": {"lr": 1e-5}})
    assert store.get_model_version("v1").meta == {"eval": {"gold": 0.5}, "config": {"lr": 1e-5}}
    with pytest.raises(Conflict):
        store.add_model_version("v1", "/other")
    with pytest.raises(NotFound):
        store.update_model_meta("nope", {})
    assert store.get_model_version("nope") is None


def test_meta_size_is_bounded(store):
    big = {"blob": "x" * (R.MAX_MODEL_META_BYTES + 1)}
    with pytest.raises(ValueError, match="meta is too large"):
        store.add_model_version("v1", "/ckpt", meta=big)
    assert store.get_model_version("v1") is None  # nothing written
    store.add_model_version("v1", "/ckpt", meta={"blob": "x" * 1000})
    with pytest.raises(ValueError, match="meta is too large"):
        store.update_model_meta("v1", big)
    assert store.get_model_version("v1").meta == {"blob": "x" * 1000}
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        store.add_model_version("v2", "/ckpt", meta={"x": object()})


def test_register_is_idempotent_and_checks_parent_and_path(store):
    a = registry.register(store, "base", "smollm2", kind="base")
    assert registry.register(store, "base", "smollm2") == a
    with pytest.raises(RegistryError, match="another path"):
        registry.register(store, "base", "elsewhere")
    with pytest.raises(RegistryError, match="no model version 'ghost'"):
        registry.register(store, "child", "/c", parent="ghost")
    assert store.get_model_version("child") is None


def test_lineage_oldest_first(store):
    _chain(store)
    assert [mv.name for mv in registry.lineage(store, "ppo2")] == ["base", "sft", "ppo1", "ppo2"]
    assert [mv.name for mv in registry.lineage(store, "rm")] == ["base", "sft", "rm"]
    assert [mv.name for mv in registry.lineage(store, "base")] == ["base"]
    assert registry.get(store, "ppo1").meta["reward_model"] == "rm"
    with pytest.raises(RegistryError):
        registry.lineage(store, "ghost")


def test_promote_marks_active_and_archives_the_previous(store):
    _chain(store)
    assert registry.current(store) is None
    d = registry.promote(store, "sft", actor="ci", report="first")
    assert (d.action, d.version, d.traffic, d.actor, d.report) == ("promote", "sft", {}, "ci", "first")
    registry.promote(store, "ppo1")
    assert registry.current(store).version == "ppo1"
    status = {mv.name: mv.status for mv in store.list_model_versions()}
    assert status == {"base": "candidate", "sft": "archived", "rm": "candidate", "ppo1": "active",
                      "ppo2": "candidate"}
    assert [mv.name for mv in store.list_model_versions(status="active")] == ["ppo1"]
    with pytest.raises(RegistryError, match="no model version"):
        registry.promote(store, "ghost")


def test_rollback_twice_goes_two_versions_back(store):
    _chain(store)
    for name in ("sft", "ppo1", "ppo2"):
        registry.promote(store, name)
    d = registry.rollback(store, actor="ci")
    assert (d.action, d.version, d.report) == ("rollback", "ppo1", "rolled back from ppo2")
    assert registry.rollback(store).version == "sft"  # not back to ppo2
    assert store.get_model_version("sft").status == "active"
    assert {mv.name for mv in store.list_model_versions(status="archived")} == {"ppo1", "ppo2"}
    with pytest.raises(RegistryError, match="no earlier version than 'sft'"):
        registry.rollback(store)
    # a promotion after a rollback: rolling back returns to what it replaced
    registry.promote(store, "ppo2")
    assert registry.rollback(store).version == "sft"


def test_rollback_with_nothing_deployed_errors(store):
    _chain(store)
    with pytest.raises(RegistryError, match="nothing has been deployed"):
        registry.rollback(store)
    registry.promote(store, "sft")
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback(store)
    assert registry.current(store).version == "sft"


def test_rejected_needs_a_report_to_promote(store):
    _chain(store)
    store.set_model_status("ppo1", "rejected")
    with pytest.raises(RegistryError, match="rejected by the gates"):
        registry.promote(store, "ppo1")
    assert registry.promote(store, "ppo1", report="gate overridden: outside eval data was broken").version == "ppo1"


def test_split_validation_and_default(store):
    _chain(store)
    d = registry.split(store, {"ppo1": 0.9, "ppo2": 0.1})
    assert (d.action, d.version, d.traffic) == ("split", "ppo1", {"ppo1": 0.9, "ppo2": 0.1})
    assert {mv.name for mv in store.list_model_versions(status="active")} == {"ppo1", "ppo2"}
    for bad, why in (({"ppo1": 1.0}, "at least two"), ({"ppo1": 1.0, "ppo2": 0}, "at least two"),
                     ({"ppo1": 1.0, "ppo2": -0.5}, "weight"), ({"ppo1": 1.0, "ppo2": float("nan")}, "weight"),
                     ({"ppo1": 1.0, "ppo2": "lots"}, "weight"), ({"ppo1": 1.0, "ghost": 1.0}, "no model version")):
        with pytest.raises(RegistryError, match=why):
            registry.split(store, bad)
    assert registry.current(store).id == d.id  # nothing logged by the refused splits
    # promoting one version ends the split: the other is archived
    registry.promote(store, "ppo2")
    assert [mv.name for mv in store.list_model_versions(status="active")] == ["ppo2"]
    assert store.get_model_version("ppo1").status == "archived"
