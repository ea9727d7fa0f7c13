"""The OpenAPI schema tells the truth about errors: every operation documents the error statuses
the server answers, in OpenAI's error shape, and not FastAPI's 422 (validation errors are 400s)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from server_fakes import FakeEngine


def test_every_operation_documents_the_real_error_statuses(tmp_path):
    from chatrlhf.models import load_tokenizer
    from chatrlhf.server.app import create_app
    from chatrlhf.server.scheduler import BatchScheduler
    from chatrlhf.server.service import ChatService
    from chatrlhf.store import Store

    store = Store(str(tmp_path / "s.db"))
    store.upgrade()
    service = ChatService(BatchScheduler(FakeEngine()), load_tokenizer("tiny"), model_name="fake")
    app = create_app(service, store=store)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        schema = client.get("/openapi.json").json()
    ops = [(p, m, op) for p, item in schema["paths"].items() for m, op in item.items()]
    assert len(ops) > 20 and any(p == "/v1/chat/completions" for p, _, _ in ops)
    for path, method, op in ops:
        codes = set(op["responses"])
        assert {"400", "401", "403", "404", "413", "429", "503"} <= codes, (method, path)
        assert "422" not in codes, (method, path)
    err = schema["paths"]["/v1/chat/completions"]["post"]["responses"]["400"]
    ref = err["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][ref]["properties"]) == {"error"}
    store.dispose()
