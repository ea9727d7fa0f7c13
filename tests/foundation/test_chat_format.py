from chatrlhf.chat_format import eot_id, render, render_prompt

DIALOG = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And times 3? Show <|im_start|>-like text & unicode: héllo 🙂"},
    {"role": "assistant", "content": "12, because 4 × 3 = 12.\n\n```python\nprint(4 * 3)\n```"},
    {"role": "user", "content": "Thanks"},
    {"role": "assistant", "content": "You're welcome!"},
]


def _masked_runs(r):
    """Consecutive masked spans of ids."""
    runs, cur = [], []
    for i, m in zip(r.ids, r.mask):
        if m:
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return runs


def test_mask_decodes_to_exactly_the_assistant_replies(smollm2):
    _, tok = smollm2
    for dialog in (DIALOG, DIALOG[1:]):  # with and without a system message
        r = render(dialog, tok)
        assert len(r.ids) == len(r.mask)
        runs = _masked_runs(r)
        replies = [m["content"] for m in dialog if m["role"] == "assistant"]
        assert [tok.decode(run) for run in runs] == [c + tok.eos_token for c in replies]
        assert all(run[-1] == eot_id(tok) for run in runs)


def test_render_equals_whole_template_tokenization(smollm2):
    _, tok = smollm2
    text = tok.apply_chat_template(DIALOG, tokenize=False)
    assert render(DIALOG, tok).ids == tok(text, add_special_tokens=False)["input_ids"]


def test_prompt_ends_with_assistant_header_and_prefixes_the_dialog(smollm2):
    _, tok = smollm2
    prompt = render_prompt(DIALOG[:4], tok)
    assert tok.decode(prompt).endswith("<|im_start|>assistant\n")
    full = render(DIALOG[:5], tok).ids
    assert full[: len(prompt)] == prompt


def test_truncation_drops_old_turns_and_keeps_mask_aligned(smollm2):
    _, tok = smollm2
    full = render(DIALOG, tok)
    limit = len(full) - 10
    r = render(DIALOG, tok, max_length=limit)
    assert len(r.ids) <= limit and len(r.ids) == len(r.mask)
    text = tok.decode(r.ids)
    assert text.startswith("<|im_start|>system\nYou are terse.")  # system kept
    assert "What is 2+2?" not in text  # oldest exchange dropped whole
    runs = [tok.decode(run) for run in _masked_runs(r)]
    assert runs[-1] == "You're welcome!" + tok.eos_token
    assert all(run.endswith(tok.eos_token) for run in runs)


def test_hard_cut_keeps_ids_and_mask_together(smollm2):
    _, tok = smollm2
    long = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "word " * 200}]
    r = render(long, tok, max_length=50)
    assert len(r.ids) == len(r.mask) == 50
    full = render(long, tok)
    assert r.ids == full.ids[:50] and r.mask == full.mask[:50]
    p = render_prompt([{"role": "user", "content": "word " * 200}], tok, max_length=40)
    assert len(p) == 40 and tok.decode(p).endswith("<|im_start|>assistant\n")
