"""``chatrlhf serve`` configuration: loopback-only --no-auth, and which checkpoint a run serves."""

from __future__ import annotations

import os
import time

import pytest
from click.testing import CliRunner

from chatrlhf.server.launch import ServeError, check_bind, is_loopback, resolve_model


def test_no_auth_only_on_loopback():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        check_bind(host, no_auth=True)
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com"):
        assert not is_loopback(host)
        check_bind(host, no_auth=False)
        with pytest.raises(ServeError, match="--no-auth refuses"):
            check_bind(host, no_auth=True)


def test_cli_refuses_no_auth_on_a_public_address():
    from chatrlhf.cli import cli

    r = CliRunner().invoke(cli, ["serve", "tiny", "--no-auth", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "--no-auth refuses to bind to '0.0.0.0'" in r.output


def _ckpt(d, age_s=0.0):
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    t = time.time() - age_s
    os.utime(d / "config.json", (t, t))


def test_run_dir_serves_newest_policy_ppo_before_sft(tmp_path):
    run = tmp_path / "runs" / "r1"
    with pytest.raises(ServeError, match="no policy checkpoint"):
        run.mkdir(parents=True)
        resolve_model(str(run))
    _ckpt(run / "sft")
    assert resolve_model(str(run)) == (str(run / "sft"), "r1/sft")
    _ckpt(run / "ppo" / "step_10", age_s=100)
    _ckpt(run / "ppo" / "step_20", age_s=10)
    assert resolve_model(str(run)) == (str(run / "ppo" / "step_20"), "r1/ppo/step_20")


def test_model_specs():
    assert resolve_model(None) == (None, "SmolLM2-135M-Instruct")
    assert resolve_model("tiny") == ("tiny", "tiny")
