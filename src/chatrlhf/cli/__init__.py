"""The ``chatrlhf`` command: a thin click group over the library's ``run`` functions.

Each area keeps its commands in its own file here and exposes ``register(group)``; heavy imports
(torch, transformers, FastAPI) happen inside the commands, so ``chatrlhf --help`` stays fast.
"""

from __future__ import annotations

import importlib

import click

# One file per area; each defines register(group).
_AREAS = ("chat", "simulate", "train", "store", "serve", "workspace", "redteam", "moderation", "models", "loop", "monitor")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chatrlhf")
def cli() -> None:
    """Build and serve a ChatGPT-style assistant with RLHF, on a laptop CPU or a GPU cluster."""


for _area in _AREAS:
    try:
        _mod = importlib.import_module(f"chatrlhf.cli.{_area}")
    except ModuleNotFoundError as e:
        if e.name != f"chatrlhf.cli.{_area}":
            raise
        continue
    _mod.register(cli)


def main() -> None:
    cli()
