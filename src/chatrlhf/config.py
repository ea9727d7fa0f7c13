"""Typed dataclass configs, YAML presets and dotted overrides, resolved by OmegaConf.

A stage's config is a dataclass; a preset is a YAML file overlaid on its defaults; the CLI passes
``key.sub=value`` overrides. OmegaConf checks types and unknown keys, so a typo in a preset fails at
load time with the key's name instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, Sequence, TypeVar

T = TypeVar("T")

PRESETS_DIR = Path(__file__).parent / "presets"


def preset_path(name_or_path: str) -> Path:
    """A preset name ("cpu", "tiny", "gpu") or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    candidate = PRESETS_DIR / f"{name_or_path.removesuffix('.yaml')}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(q.stem for q in PRESETS_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"no preset {name_or_path!r}: not a YAML file, and not one of {known}")


def load_config(cls: type[T], preset: str | None = None, overrides: Sequence[str] = ()) -> T:
    """Defaults of ``cls`` <- preset YAML <- dotted overrides; returns a real ``cls`` instance."""
    from omegaconf import OmegaConf

    assert is_dataclass(cls)
    cfg = OmegaConf.structured(cls)
    if preset:
        cfg = OmegaConf.merge(cfg, OmegaConf.load(preset_path(preset)))
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def to_yaml(cfg: Any) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
