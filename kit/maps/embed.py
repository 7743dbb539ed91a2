"""open_clip embeddings of texts and images, batched and cached on disk.

    emb = Embedder(preset="tiny")
    emb.texts(["ukiyo-e woodblock print", "art deco poster"])   # (2, dim) float32, unit rows
    emb.images(["portraits/", "scan.png", pil_image])            # rows of the images it could read
    result = emb.embed_images(["portraits/"])                   # .vectors, .items, .errors

Every vector is L2-normalised float32, so a dot product is a cosine similarity.
Vectors are cached in SQLite under the sha256 of the content (file bytes, decoded
pixels of a PIL image, or UTF-8 text) and the model id: embedding the same images
again reads them back instead of running the model.

The tiny preset's CLIP is a real open_clip ``CLIP`` with a small ViT, random
weights seeded from code, loaded through the same ``create_model_and_transforms``
call a real preset takes. torch and open_clip are imported only when needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .. import checks
from ..core import presets
from ..errors import KitError
from ..files import MAX_PIXELS, ReadError, read_file, read_image
from .embed_cache import VectorCache, default_cache_path

TINY_CLIP = "kit-tiny-clip"
# A real open_clip CLIP, shrunk: a 64 px ViT with 8 px patches (64 tokens + class token),
# and the standard text tower's context (77) and vocabulary (49,408) so the real tokenizer fits.
TINY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 64, "head_width": 32, "layers": 3},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_SEED = 0

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
_KEY_VERSION = b"kit-embed-v2"  # bump when the reading or preprocessing of inputs changes


# ---------------------------------------------------------------- loading open_clip


def register_tiny_clip() -> None:
    """Add the tiny config to open_clip's model registry as ``kit-tiny-clip`` (once)."""
    import open_clip

    if TINY_CLIP in open_clip.list_models():
        return
    # open_clip registers configs from JSON files; the registry keeps them after the file is gone.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{TINY_CLIP}.json"
        path.write_text(json.dumps(TINY_CLIP_CONFIG), encoding="utf-8")
        open_clip.add_model_config(path)


class _NoRandomInitWarning(logging.Filter):
    """Hide open_clip's 'initialized randomly' warning: random weights are what we asked for."""

    def filter(self, record):
        return "initialized randomly" not in record.getMessage()


def _random_clip(name: str, seed: int):
    """(model, train transform, preprocess) of open_clip model `name` with weights drawn from `seed`."""
    import open_clip
    import torch

    register_tiny_clip()
    quiet = _NoRandomInitWarning()
    logging.getLogger().addFilter(quiet)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return open_clip.create_model_and_transforms(name, pretrained=None)
    finally:
        logging.getLogger().removeFilter(quiet)


def build_tiny_clip(seed: int = TINY_SEED):
    """The tiny preset's open_clip model with random weights from `seed` (what training starts from)."""
    return _random_clip(TINY_CLIP, seed)[0]


def load_clip(preset=None, device: str | None = None, dtype=None):
    """(model, preprocess, tokenizer) of a preset's open_clip model, in eval mode on `device`, in
    `dtype` (default float32).

    `preset.clip_pretrained` is an open_clip tag (weights from the Hub or its cache),
    a local ``.safetensors`` file, ``"toy"``: the weights the kit ships, trained on the toy world
    (the tiny preset, see `kit.toyworld`), or ``"random"``: the architecture with random weights
    seeded from code (what the benchmarks use for honest timings).
    """
    import open_clip
    import torch

    preset = presets.get(preset)
    device = presets.pick_device(device)
    register_tiny_clip()
    name, pretrained = preset.clip_model, preset.clip_pretrained
    if ":" not in name and name not in open_clip.list_models():
        raise KitError(f"unknown open_clip model {name!r} in preset {preset.name!r}: see open_clip.list_models()")

    if pretrained == "toy":
        from ..core import tiny

        pretrained = str(tiny.weights_file("clip"))
    if pretrained == "random":
        model, _, preprocess = _random_clip(name, TINY_SEED)
    elif Path(pretrained).is_file():
        if Path(pretrained).suffix != ".safetensors":
            raise KitError(f"clip weights {pretrained} must be a .safetensors file: the kit never unpickles weights")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        except RuntimeError as err:  # a file saved from another architecture
            raise KitError(f"clip weights {pretrained} do not fit open_clip model {name}: {err}") from err
    else:
        if not open_clip.get_pretrained_cfg(name, pretrained):
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
            raise KitError(f"open_clip has no weights {pretrained!r} for {name}: known tags are {tags}")
        presets.require(preset, "clip")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        except (RuntimeError, OSError) as err:  # open_clip wraps failed downloads in RuntimeError
            raise presets.not_available(preset, "clip", err) from None

    model = model.to(device, dtype or torch.float32).eval().requires_grad_(False)
    return model, preprocess, open_clip.get_tokenizer(name)


def model_id(preset, dtype=None) -> str:
    """The name that keys the cache: "model/pretrained", with a fingerprint for local or random weights,
    and ":bfloat16" (say) when the model runs in another dtype than float32: its vectors differ a little."""
    precision = str(dtype or "float32").replace("torch.", "")
    return _model_name(preset) + ("" if precision == "float32" else f":{precision}")


def _model_name(preset) -> str:
    preset = presets.get(preset)
    name, pretrained = preset.clip_model, preset.clip_pretrained
    if pretrained == "random":
        register_tiny_clip()
        import open_clip

        config = json.dumps(open_clip.get_model_config(name), sort_keys=True)
        return f"{name}/random@{_short_hash(f'{config} seed={TINY_SEED}')}"
    if pretrained == "toy":
        from ..core import tiny

        return f"{name}/toy@{tiny.card()['weights']['clip']['sha256'][:12]}"
    if Path(pretrained).is_file():
        stat = Path(pretrained).stat()
        path = Path(pretrained).resolve()
        return f"{name}/{path.name}@{_short_hash(f'{path} {stat.st_size} {stat.st_mtime_ns}')}"
    return f"{name}/{pretrained}"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# ---------------------------------------------------------------- reading images
#
# Images are read by kit.files.read_image, the kit's one reader (size caps, regular files
# only, EXIF orientation, transparency on white, 16-bit scaled); this module adds folders.


def expand(items) -> list:
    """Paths and PIL images, with each folder replaced by its image files (recursive, sorted).

    Inside folders every entry with an image suffix counts except folders, so a broken link,
    a FIFO or a device named like an image is reported when read, never dropped; hidden files
    and folders (".DS_Store", "._photo.jpg") are left out. A path that does not exist
    stays in the list and is reported when read.
    """
    if isinstance(items, (str, os.PathLike, Image.Image)):
        items = [items]
    out = []
    for index, item in enumerate(items):
        if isinstance(item, Image.Image):
            out.append(item)
        elif isinstance(item, (str, os.PathLike)):
            path = Path(item).expanduser()
            if path.is_dir():
                found = [
                    p
                    for p in path.rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES
                    and not _is_folder(p)
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                ]
                out.extend(sorted(found, key=lambda p: p.relative_to(path).parts))
            else:
                out.append(path)
        else:
            raise KitError(f"images[{index}] must be a PIL image, a file path or a folder, got {type(item).__name__}")
    return out


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name the file system cannot follow (a loop of links): read, and reported, as a file
        return False


# ---------------------------------------------------------------- the embedder


@dataclass
class ImageEmbeddings:
    """The result of `Embedder.embed_images`.

    ``vectors[i]`` is the embedding of ``items[i]`` (a Path, or the PIL image given);
    ``errors`` lists the ``(item, reason)`` pairs that were skipped, in input order.
    """

    vectors: np.ndarray
    items: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)


class Embedder:
    """Texts and images -> L2-normalised float32 vectors from a preset's open_clip model.

    preset: a preset name or `Preset` (default ``$KIT_PRESET``, else sd-turbo's ViT-B-32).
    device: "cpu", "cuda", "mps" (default: the best available).
    dtype: the model's dtype (default: as a Studio's, `kit.presets.dtype_choice`: bfloat16 on a CPU
        that computes it natively; bench_embed.py measured ViT-B-32 3.5x faster here, with a lowest
        cosine to float32 of 0.997 on random weights).
        Vectors are float32 whatever the dtype; the cache keeps each dtype's apart.
    cache: True for ``$KIT_CACHE/embeddings.sqlite``, a file or folder path, or False/None for none.
    batch_size: inputs per forward pass.
    max_pixels: image files with more pixels than this are skipped, not decoded.

    The model is loaded on first use.
    """

    def __init__(
        self,
        preset=None,
        device: str | None = None,
        cache=True,
        batch_size: int = 32,
        max_pixels: int = MAX_PIXELS,
        dtype=None,
    ):
        batch_size = checks.whole(batch_size, "batch_size", 1)
        max_pixels = checks.whole(max_pixels, "max_pixels", 1)
        self.preset = presets.get(preset)
        self.device = presets.pick_device(device)
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.dtype = presets.pick_dtype(self.device, dtype, self.preset)
        self.model_id = model_id(self.preset, self.dtype)
        if cache is True:
            self.cache = VectorCache(default_cache_path())
        elif cache is False or cache is None:
            self.cache = None
        else:
            self.cache = VectorCache(cache)
        self._clip = None
        self._dim = None

    def __repr__(self):
        where = self.cache.path if self.cache else "off"
        return f"Embedder({self.model_id}, device={self.device}, cache={where})"

    # -- the model, loaded lazily

    def _load(self):
        if self._clip is None:
            self._clip = load_clip(self.preset, self.device, self.dtype)
        return self._clip

    @property
    def model(self):
        return self._load()[0]

    @property
    def preprocess(self):
        return self._load()[1]

    @property
    def tokenizer(self):
        return self._load()[2]

    @property
    def dim(self) -> int:
        """Length of each vector (read from open_clip's model config: loads no weights)."""
        if self._dim is None:
            import open_clip
            import torch

            register_tiny_clip()
            name = self.preset.clip_model
            config = open_clip.get_model_config(name) if ":" not in name else None
            if config and "embed_dim" in config:
                self._dim = int(config["embed_dim"])
            else:  # a model whose config lives elsewhere: ask the model itself
                with torch.inference_mode():
                    self._dim = int(self.model.encode_text(self.tokenizer(["a"]).to(self.device)).shape[-1])
        return self._dim

    # -- texts

    def texts(self, texts) -> np.ndarray:
        """Embed texts: an (N, dim) float32 array of unit rows, in input order.

        A single string counts as a list of one. Texts longer than the model's
        context window (77 tokens) are truncated by the tokenizer, so words past it
        do not count. An empty or blank text raises KitError naming its index.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise KitError(f"texts[{index}] must be a string, got {type(text).__name__}")
            if not text.strip():
                raise KitError(f"texts[{index}] is empty: give every text some words")
            bad = next((c for c in text if "\ud800" <= c <= "\udfff"), None)
            if bad is not None:  # half of a UTF-16 pair: not a character, nothing can encode it
                raise KitError(
                    f"texts[{index}] holds a lone surrogate ({bad!r}), which is not text: "
                    "decode the text with its own encoding first"
                )
        keys = [_hash(b"text", text.encode("utf-8")) for text in texts]
        return self._embed(keys, texts, self._encode_texts, desc="embedding texts")[0]

    def _encode_texts(self, pairs) -> dict[str, np.ndarray]:
        tokens = self.tokenizer([text for _, text in pairs]).to(self.device)
        vectors = self.model.encode_text(tokens)
        return dict(zip([key for key, _ in pairs], unit_float32(vectors)))

    # -- images

    def images(self, items, errors: str = "skip") -> np.ndarray:
        """Embed images: an (N, dim) float32 array, one unit row per image that could be read.

        items: PIL images, file paths and folders (expanded recursively to their image
        files, sorted; see `expand`), or a single one of these. Unreadable items are skipped with a warning naming
        how many;
        use `embed_images` to learn which row belongs to which item and why items
        were skipped. errors="raise" raises KitError naming an unreadable item instead.
        """
        result = self.embed_images(items, errors=errors)
        if result.errors:
            item, reason = result.errors[0]
            warnings.warn(
                f"skipped {len(result.errors)} of {len(result.items) + len(result.errors)} images "
                f"that could not be read (first: {item}: {reason}); "
                "embed_images() lists them all",
                stacklevel=2,
            )
        return result.vectors

    def embed_images(self, items, errors: str = "skip") -> ImageEmbeddings:
        """Embed images and report: vectors, the item of each row, and (item, reason) for each skipped one.

        Takes what `images` takes. Files are keyed by a hash of their bytes, so a
        cached file is neither decoded nor run through the model.
        """
        if errors not in ("skip", "raise"):
            raise KitError(f"errors must be 'skip' or 'raise', got {errors!r}")
        items = expand(items)
        keys, reasons = [], {}  # reasons: why an item could not even be hashed, by position
        for index, item in enumerate(items):
            try:
                keys.append(self._image_key(item))
            except ReadError as err:
                if errors == "raise":
                    raise
                keys.append(None)
                reasons[index] = err.reason
        failed = {}  # why an image could not be decoded, by key

        def encode(pairs):
            import torch

            tensors, ok = [], []
            for key, item in pairs:
                try:
                    tensors.append(self.preprocess(self._read(item)))
                    ok.append(key)
                except ReadError as err:
                    if errors == "raise":
                        raise
                    failed[key] = err.reason
            if not tensors:
                return {}
            vectors = self.model.encode_image(torch.stack(tensors).to(self.device, self.dtype))
            return dict(zip(ok, unit_float32(vectors)))

        readable = [index for index, key in enumerate(keys) if key is not None]
        vectors, found = self._embed(
            [keys[i] for i in readable], [items[i] for i in readable], encode, desc="embedding images"
        )
        rows, kept, skipped = [], [], []
        row = 0
        for index, item in enumerate(items):
            if keys[index] is None:
                skipped.append((item, reasons[index]))
                continue
            if found[row]:
                rows.append(row)
                kept.append(item)
            else:
                skipped.append((item, failed[keys[index]]))
            row += 1
        return ImageEmbeddings(vectors[rows], kept, skipped)

    def _image_key(self, item) -> str:
        """The content hash of an image: its file's bytes, or a PIL image's mode, size and pixels."""
        if isinstance(item, Image.Image):
            try:
                pixels = item.tobytes()
            except (OSError, ValueError) as err:
                raise ReadError("image", "the PIL image given", f"PIL image cannot be loaded ({err})") from None
            header = f"{item.mode} {item.size[0]} {item.size[1]}".encode()
            return _hash(b"pil", header + b"\0" + pixels)
        # one read: cheaper than chunked hashing for typical images; regular files only, capped
        digest = hashlib.sha256(read_file(item, field="image")).hexdigest()
        return _hash(b"file", digest.encode())

    def _read(self, item) -> Image.Image:
        """The RGB image the model sees: `kit.files.read_image`, the kit's one reader."""
        return read_image(item, max_pixels=self.max_pixels)

    # -- the shared loop: cache look-up, batched forward passes, cache write

    def _embed(self, keys, inputs, encode, desc):
        """(vectors, found) for `inputs` in order: from the cache where it has them, else from `encode`.

        `encode` takes a batch of (key, input) pairs and returns {key: vector} for
        those it could embed; rows it left out stay zero with found False.
        Each batch is one cache query, one forward pass and one cache write.
        """
        import torch

        dim = self.dim
        out = np.zeros((len(inputs), dim), dtype=np.float32)
        found = np.zeros(len(inputs), dtype=bool)
        filled: dict[str, int] = {}  # key -> a row that holds its vector: repeats are embedded once
        batches = range(0, len(inputs), self.batch_size)
        bar = None
        if len(batches) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(inputs), desc=desc, unit="item")
        try:
            for start in batches:
                batch = range(start, min(start + self.batch_size, len(inputs)))
                wanted = [keys[i] for i in batch if keys[i] not in filled]
                cached = self.cache.get(self.model_id, wanted, dim) if self.cache else {}
                todo = {keys[i]: inputs[i] for i in batch if keys[i] not in filled and keys[i] not in cached}
                new = {}
                if todo:
                    with torch.inference_mode():
                        new = encode(list(todo.items()))
                    if self.cache:
                        self.cache.put(self.model_id, new)
                for i in batch:
                    key = keys[i]
                    if key in filled:
                        out[i] = out[filled[key]]
                    elif key in cached or key in new:
                        out[i] = cached[key] if key in cached else new[key]
                        filled[key] = i
                    else:
                        continue
                    found[i] = True
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return out, found


def unit_float32(vectors) -> np.ndarray:
    """A model's output rows as float32 unit vectors, normalised in float32 (a bfloat16 norm is off
    by up to about 0.4%, more than the cache admits)."""
    vectors = vectors.float().cpu().numpy()
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _hash(kind: bytes, content: bytes) -> str:
    return hashlib.sha256(_KEY_VERSION + b"\0" + kind + b"\0" + content).hexdigest()
