"""Safety: red teaming (an attacker chatbot against a target, judged), adversarial training data,
and the trained moderation model. The pattern filter the server uses today is ``chatrlhf.moderation``."""
