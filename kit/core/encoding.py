"""Prompt encoding: texts to the conditioning a diffusers pipeline takes, read as the web UIs read them.

`PromptEncoder` is the part of the Studio that encodes (a mixin: `kit.studio.Studio` is one). Under the
"webui" encoding (`kit.prompts`) a prompt's emphasis is read and its tokens are encoded in chunks of the
text encoder's window, laid side by side; "truncate" (records written before) cuts after one window. The
tokenizer can be read alone, before the pipeline is loaded, so a widget counts tokens as a prompt is typed.

The state it uses is the Studio's: ``preset``, ``device``, ``pipe``, ``_parts``, ``_tokenizer``, the
``_loading`` lock and the ``_lock`` every pipeline call takes.
"""

from __future__ import annotations

import warnings
from functools import partial

import torch

from .. import prompts as prompt_text
from . import presets


class PromptEncoder:
    """Encode prompts and count their tokens (see the module docstring)."""

    def encode(
        self,
        prompts: list[str],
        negative: str = "",
        guidance: float = 0.0,
        *,
        encoding: str = prompt_text.WEBUI,
        chunks: int = 1,
        pipe=None,
    ) -> dict[str, torch.Tensor]:
        """The conditioning for prompts: the pipeline's embedding arguments, one row per prompt.

        Under the "webui" encoding (see `kit.prompts`) each prompt's emphasis is read and its
        tokens are encoded in chunks of the text encoder's window, laid side by side; every row
        (and the negative prompt's, when guidance > 1 uses it) is padded with empty chunks to the
        longest, and to at least `chunks`, so prompts of different lengths can be blended. Each
        text is encoded on its own, so a prompt encodes the same alone or in a batch. A prompt
        that fits one chunk, with no emphasis, encodes exactly as the diffusers pipeline would.
        `pipe` is another pipeline of this studio (`load("inpaint")`); the text-to-image one by default.
        """
        pipe = self.pipe if pipe is None else pipe
        prompt_text.check_encoding(encoding)
        cfg = guidance > 1
        if encoding == prompt_text.TRUNCATE:
            self._warn_if_truncated(prompts)
        texts = list(dict.fromkeys([*prompts, *([negative] if cfg else [])]))
        sdxl = self.preset.family == "sdxl"
        encoders = [(pipe.tokenizer, pipe.text_encoder)] + ([(pipe.tokenizer_2, pipe.text_encoder_2)] if sdxl else [])
        with self._lock, torch.inference_mode():
            encoded = {text: self._encode_text(encoders, text, encoding, sdxl) for text in texts}
            length = pipe.tokenizer.model_max_length  # of one chunk, in tokens
            longest = max([chunks * length, *(hidden.shape[1] for hidden, _ in encoded.values())])
            empty = None  # an empty prompt's chunk pads the shorter texts
            for text, (hidden, pooled) in encoded.items():
                if hidden.shape[1] < longest:
                    if empty is None:
                        empty = self._encode_text(encoders, "", prompt_text.TRUNCATE, sdxl)[0]
                    encoded[text] = (
                        torch.cat([hidden, *[empty] * ((longest - hidden.shape[1]) // length)], dim=1),
                        pooled,
                    )
        dtype = (pipe.text_encoder_2 if sdxl else pipe.text_encoder).dtype

        def rows(names, which):
            hidden = torch.cat([encoded[t][0] for t in which]).to(self.device, dtype)
            out = {names[0]: hidden}
            if sdxl:
                out[names[1]] = torch.cat([encoded[t][1] for t in which]).to(self.device, dtype)
            return out

        cond = rows(("prompt_embeds", "pooled_prompt_embeds"), prompts)
        if cfg:
            cond.update(rows(("negative_prompt_embeds", "negative_pooled_prompt_embeds"), [negative] * len(prompts)))
        return cond

    def _encode_text(self, encoders, text: str, encoding: str, sdxl: bool):
        """One text's hidden states (1, 77 x chunks, width) and, for SDXL, its pooled embedding (of
        the first chunk). Emphasis scales each token's embedding, then the chunk's mean is restored."""
        per_encoder, pooled = [], None
        for tokenizer, encoder in encoders:
            window = tokenizer.model_max_length - 2
            pieces = prompt_text.chunks(partial(_tokenize, tokenizer), text, window, encoding)
            hidden = []
            for ids, _ in pieces:
                pad = [tokenizer.pad_token_id] * (window - len(ids))
                row = torch.tensor(
                    [[tokenizer.bos_token_id, *ids, tokenizer.eos_token_id, *pad]], device=encoder.device
                )
                if sdxl:  # as the SDXL pipeline: the penultimate layer, and the second encoder's pooled output
                    out = encoder(row, output_hidden_states=True)
                    if pooled is None and out[0].ndim == 2:
                        pooled = out[0]
                    hidden.append(out.hidden_states[-2])
                else:
                    mask = None
                    if getattr(encoder.config, "use_attention_mask", False):
                        mask = torch.tensor([[1] * (len(ids) + 2) + [0] * len(pad)], device=encoder.device)
                    hidden.append(encoder(row, attention_mask=mask)[0])
            per_encoder.append(hidden)
        chunks = []
        for (_, weights), *parts in zip(pieces, *per_encoder):
            chunk = torch.cat(parts, dim=-1)  # SDXL: the two encoders' states side by side
            if any(w != 1.0 for w in weights):
                scale = torch.ones(chunk.shape[1], dtype=torch.float32, device=chunk.device)
                scale[1 : 1 + len(weights)] = torch.tensor(weights)
                before = chunk.float().mean()
                weighed = chunk.float() * scale[None, :, None]
                after = weighed.mean()
                chunk = (weighed * (before / after) if after != 0 else weighed).to(chunk.dtype)
            chunks.append(chunk)
        return torch.cat(chunks, dim=1), pooled

    @property
    def tokenizer(self):
        """The pipeline's prompt tokenizer; before the pipeline is loaded, the tokenizer alone (no
        weights, and only from files on this machine: counting never downloads), so a widget can
        count tokens as a prompt is typed."""
        if "pipeline" in self._parts:
            return self.pipe.tokenizer
        with self._loading:
            if self._tokenizer is None:
                from transformers import CLIPTokenizer

                try:
                    self._tokenizer = CLIPTokenizer.from_pretrained(
                        self._source("pipeline"), subfolder="tokenizer", local_files_only=True
                    )
                except OSError as err:
                    raise presets.not_available(self.preset, "pipeline", err) from None
            return self._tokenizer

    def _token_ids(self, prompt: str) -> tuple[list[int], int]:
        """The prompt's token ids (no start and end tokens) and the text encoder's window (75 for CLIP)."""
        tokenizer = self.tokenizer
        return _tokenize(tokenizer, prompt), tokenizer.model_max_length - 2

    def count_tokens(self, prompt) -> list[int]:
        """The prompt's tokens per chunk of the text encoder's window (75 for CLIP), as `encode` cuts
        them: "a cat" -> [2], an 80-token prompt -> [75, 5], "a BREAK b" -> [1, 1]. Emphasis brackets
        and weights are not tokens: "(a cat:1.2)" -> [2]."""
        prompt = self.check_prompt(prompt, allow_empty=True)
        tokenizer = self.tokenizer
        pieces = prompt_text.chunks(partial(_tokenize, tokenizer), prompt, tokenizer.model_max_length - 2)
        return [len(ids) for ids, _ in pieces]

    def chunk_count(self, prompts, encoding: str = prompt_text.WEBUI) -> int:
        """How many chunks the longest of `prompts` takes (what `encode(..., chunks=)` pads to, so
        that prompts of different lengths blend in a walk or a fusion)."""
        if encoding == prompt_text.TRUNCATE:
            return 1
        return max(len(self.count_tokens(prompt)) for prompt in prompts)

    def _warn_if_truncated(self, prompts):
        """Under the "truncate" encoding (older records), say what the text encoder does not read."""
        for prompt in dict.fromkeys(prompts):
            ids, window = self._token_ids(prompt)
            if len(ids) > window:
                dropped = self.tokenizer.decode(ids[window:])
                warnings.warn(
                    f"the prompt is {len(ids)} tokens; the text encoder reads {window}, so this part is dropped: "
                    f"{dropped!r}",
                    stacklevel=4,
                )


def _tokenize(tokenizer, text: str) -> list[int]:
    """A text's token ids, without the start and end tokens."""
    return tokenizer(text, add_special_tokens=False, verbose=False).input_ids
