from click.testing import CliRunner

from chatrlhf.cli import cli
from chatrlhf.cli.chat import chat_loop
from chatrlhf.engine import SamplingParams


class RecordingEngine:
    """Answers with a fixed reply and records the prompts it was given."""

    def __init__(self, engine):
        self.engine, self.prompts = engine, []

    def stream(self, prompts, params):
        self.prompts.append(prompts[0])
        return self.engine.stream(prompts, params)


def test_chat_is_multi_turn_with_reset_and_system(tiny):
    from chatrlhf.engine import Engine

    model, tok = tiny
    eng = RecordingEngine(Engine(model, tok))
    lines = iter(["hello", "and again", "/system Be brief.", "hi", "/reset", "bye", "/bogus"])
    out = []

    def read(_):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None  # like Ctrl-D at the prompt

    chat_loop(eng, tok, SamplingParams(max_new_tokens=5, temperature=0), None,
              read=read, write=out.append)
    text = "".join(out)
    assert text.count("assistant> ") == 4
    decoded = [tok.decode(p) for p in eng.prompts]
    assert "hello" in decoded[1] and "and again" in decoded[1]  # second turn sees the first
    assert "Be brief." in decoded[2] and "hello" not in decoded[2]  # /system resets
    assert "Be brief." in decoded[3] and "hi" not in decoded[3].split("Be brief.")[1]  # /reset
    assert "unknown command '/bogus'" in text


def test_chat_command_streams_from_a_model_and_reports_missing_ones(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["chat", "tiny", "--max-tokens", "4", "--temperature", "0"],
                        input="hello\n/quit\n")
    assert res.exit_code == 0, res.output
    assert "assistant> " in res.output
    res = runner.invoke(cli, ["chat", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "Tried:" in res.output
