"""The login page's ``?next=`` check (static/app.js ``safeNext``), run in Node against the forms
browsers read differently from how they are typed: an off-site target must never come back."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from chatrlhf.server.app import STATIC_DIR

ORIGIN = "http://127.0.0.1:8000"
# (query string as the browser has it, where the login should go: a path here, or None)
CASES = [
    ("?next=/workspace", "/workspace"),
    ("?next=/workspace/rank%3Fk%3D4", "/workspace/rank?k=4"),
    ("?next=/%09/evil.com", None),  # the reported one: the tab is dropped, leaving //evil.com
    ("?next=/%0A/evil.com", None),
    ("?next=/%0D%0A/evil.com", None),
    ("?next=//evil.com", None),
    ("?next=%2F%2Fevil.com", None),
    ("?next=/%5Cevil.com", None),  # "/\\evil.com": a backslash is a slash to the URL parser
    ("?next=%5C%5Cevil.com", None),
    ("?next=%20//evil.com", None),
    ("?next=%00//evil.com", None),
    ("?next=/.//evil.com", None),  # dot segments resolve to the path //evil.com
    ("?next=https://evil.com/", None),
    ("?next=javascript:alert(1)", None),
    ("?next=", None),
]


def _safe_next_source() -> str:
    js = (STATIC_DIR / "app.js").read_text()
    m = re.search(r"^function safeNext\(.*?^// end safeNext$", js, re.S | re.M)
    assert m, "safeNext not found in app.js"
    return m.group(0)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_only_same_origin_paths_are_followed_after_login():
    script = _safe_next_source() + f"""
const cases = {json.dumps([q for q, _ in CASES])};
console.log(JSON.stringify(cases.map(q => safeNext(new URLSearchParams(q).get("next"), {json.dumps(ORIGIN)}))));
"""
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True)
    got = json.loads(out.stdout)
    for (query, want), result in zip(CASES, got):
        assert result == (None if want is None else ORIGIN + want), query
