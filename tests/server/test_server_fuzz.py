"""Schemathesis against the whole app in-process (fake engine, SQLite store): every operation,
authenticated as a user, a trainer and an admin, with a fixed seed and example budget. No
answer may be a 5xx, and statuses and content types must be ones the schema documents."""

from __future__ import annotations

import pytest
from server_fakes import FakeEngine

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES = 12  # per operation and role, about 1,200 requests in all


@pytest.fixture(scope="module")
def app_and_store(tmp_path_factory):
    from chatrlhf.models import load_tokenizer
    from chatrlhf.moderation import moderate
    from chatrlhf.server.app import create_app
    from chatrlhf.server.quotas import QuotaConfig
    from chatrlhf.server.scheduler import BatchScheduler
    from chatrlhf.server.service import ChatService
    from chatrlhf.store import Store

    store = Store(str(tmp_path_factory.mktemp("fuzz") / "fuzz.db"))
    store.upgrade()
    engine = FakeEngine(step_s=0.0, words=["w "] * 8)
    service = ChatService(BatchScheduler(engine, batch_wait_s=0.001), load_tokenizer("tiny"),
                          model_name="fake", moderation=moderate, store=store)
    # Quotas off: the fuzzer sends far more than a person would, and a 429 is not what it tests.
    app = create_app(service, store=store, moderation=moderate,
                     quotas=QuotaConfig(requests_per_minute=0, concurrent=0))
    yield app, store
    store.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("role", ["user", "trainer", "admin"])
def test_the_fuzzer_finds_no_server_error_and_no_undocumented_answer(app_and_store, role):
    from hypothesis import HealthCheck, given, seed, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

    app, store = app_and_store
    user = store.create_user(f"fuzz-{role}", role=role)
    headers = {"Authorization": f"Bearer {store.create_api_key(f'fuzz-{role}', user_id=user.id)}",
               "Host": "127.0.0.1"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Host": "127.0.0.1"})
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    for op in operations:
        @seed(15)
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(op.as_strategy())
        def run(case):
            try:
                case.call_and_validate(headers=headers, checks=checks)
            except Exception as e:  # collect per operation, so one run reports them all
                failures.setdefault(f"{op.method.upper()} {op.path}", str(e)[:400])

        run()
    assert not failures, failures
