"""Safety: red teaming (an attacker chatbot against a target, judged), adversarial training data,
and the trained moderation model (``moderation_model``: train, evaluate, save/load; ``moderator``: the
server hook with a block/warn/log policy). The pattern filter the server uses by default is
``chatrlhf.moderation``."""
