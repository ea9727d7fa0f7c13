"""Safety: red teaming (an attacker chatbot against a target, judged), adversarial training data,
and the trained moderation model. The pattern filter the server uses by default is
``chatrlhf.moderation``.

- ``attacks``: harmful intents and the attacker's four modes (template jailbreak families,
  zero-shot and few-shot attacks written by an attacker model, multi-turn escalations);
- ``redteam``: targets (a local model or an OpenAI-compatible endpoint), the judge, ASR summaries
  and ``run(RedTeamConfig)``, the ``chatrlhf redteam`` command;
- ``moderation_model``: OpenAI's 13 categories on a MiniLM encoder (train, evaluate, save/load);
  ``moderator``: the server hook with a block/warn/log policy (``chatrlhf serve --moderation-model``).
"""
