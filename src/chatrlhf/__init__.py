"""chatrlhf: SFT, reward model, PPO and the chat product around them, from a laptop CPU up."""

__version__ = "0.1.0"
