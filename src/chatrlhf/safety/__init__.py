"""Safety: red teaming (an attacker chatbot against a target, judged), adversarial training data,
and the trained moderation model, which the server moderates with by default (one ships in
``moderation_default/``). The older pattern filter is ``chatrlhf.moderation``
(``chatrlhf serve --moderation pattern``).

- ``attacks``: harmful intents and the attacker's four modes (template jailbreak families,
  zero-shot and few-shot attacks written by an attacker model, multi-turn escalations);
- ``redteam``: targets (a local model or an OpenAI-compatible endpoint), the judge, ASR summaries
  and ``run(RedTeamConfig)``, the ``chatrlhf redteam`` command;
- ``moderation_model``: OpenAI's 13 categories on a MiniLM encoder (train, evaluate, save/load);
  ``moderator``: the server hook with a block/warn/log policy (``chatrlhf serve``'s default).
"""
