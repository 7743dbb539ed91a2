"""The OpenVINO backend (kit.core.openvino_backend) on the tiny preset: the same images as torch within
a stated PSNR, replays bit for bit, exports once, and clear errors before any model work."""

import sys

import numpy as np
import pytest

import kit
from kit import Record
from kit.core import openvino_backend
from kit.errors import KitError

pytestmark = pytest.mark.slow  # exports every part to OpenVINO and compiles it

needs_openvino = pytest.mark.skipif(
    __import__("importlib").util.find_spec("openvino") is None, reason="the openvino extra is not installed"
)

# Measured on the tiny preset in float32 (2-core AVX-512 CPU, openvino 2026.4): 84 dB for the full
# VAE, identical pixels for TAESD; an image from other weights or another seed is below 20 dB.
MIN_PSNR = 60.0
PROMPT = "portrait of an elder, watercolor"


def psnr(a, b) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mse = np.mean((x - y) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The exports of this module go to a folder of its own."""
    folder = tmp_path_factory.mktemp("openvino-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(openvino_backend, "cache_root", lambda: folder)
        yield folder


@pytest.fixture(scope="module")
def ov_studio(cache):
    studio = kit.Studio(preset="tiny", backend="openvino")
    studio.progress_bar = False
    return studio


def test_a_backend_not_known_is_refused_naming_the_field():
    with pytest.raises(KitError, match=r"backend must be one of torch, openvino, got 'onnx'"):
        kit.Studio(preset="tiny", backend="onnx")


def test_without_openvino_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    with pytest.raises(KitError, match=r'pip install "kit-portraits\[openvino\]"'):
        kit.Studio(preset="tiny", backend="openvino")


def test_openvino_needs_the_cpu_and_the_sd_family():
    with pytest.raises(KitError, match="runs on the CPU"):
        openvino_backend.pick("openvino", "cuda", None, kit.presets.get("tiny"))
    with pytest.raises(KitError, match="sdxl"):
        kit.Studio(preset="tiny-sdxl", backend="openvino")


def test_records_written_before_are_torch_and_a_bad_backend_is_refused(studio):
    assert Record.from_dict({"prompt": "a face"}).backend == "torch"
    assert studio.record().backend == "torch"
    with pytest.raises(KitError, match=r"record.backend must be one of torch, openvino, got 'tensorrt'"):
        studio.check_record(Record(prompt="a face", width=64, height=64, backend="tensorrt"))


@needs_openvino
def test_openvino_images_agree_with_torch(ov_studio, studio):
    full, preview = ov_studio.generate(PROMPT, seed=5, n=2)[0], ov_studio.generate(PROMPT, seed=5, preview=True)[0]
    assert type(ov_studio.pipe.unet) is openvino_backend.UNet  # the pipeline ran OpenVINO's models
    assert type(ov_studio.pipe.vae.decoder) is openvino_backend.Stand
    assert type(ov_studio.preview_vae.decoder) is openvino_backend.Stand
    assert (full.record.backend, full.record.dtype) == ("openvino", "float32")
    torch_full, torch_preview = studio.generate(PROMPT, seed=5)[0], studio.generate(PROMPT, seed=5, preview=True)[0]
    assert psnr(full.image, torch_full.image) >= MIN_PSNR
    assert psnr(preview.image, torch_preview.image) >= MIN_PSNR
    other = studio.generate(PROMPT, seed=6)[0]  # the measure can fail: another seed is far off
    assert psnr(full.image, other.image) < MIN_PSNR


@needs_openvino
def test_an_openvino_record_replays_bit_for_bit_with_openvino(ov_studio, tmp_path):
    art = ov_studio.generate(PROMPT, seed=11)[0]
    path = art.save(tmp_path)
    again = kit.Studio.for_record(path)
    assert again.backend == "openvino"
    again.progress_bar = False
    result = kit.replay(path, again)
    assert result.match and result.max_abs_diff == 0 and not result.differences
    on_torch = kit.replay(path, kit.Studio(preset="tiny", backend="torch"))
    assert on_torch.differences["backend"] == ("openvino", "torch")


@needs_openvino
def test_a_second_studio_with_the_same_weights_and_size_exports_nothing(ov_studio, cache):
    first = ov_studio.generate(PROMPT, seed=2)[0]
    saved = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert {p.parent.name.split("-")[0] for p in saved} >= {"unet", "text_encoder", "vae_decoder", "taesd_decoder"}
    exports = openvino_backend.exports

    second = kit.Studio(preset="tiny", backend="openvino")
    second.progress_bar = False
    again = second.generate(PROMPT, seed=2)[0]
    assert openvino_backend.exports == exports
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == saved
    assert np.array_equal(np.asarray(again.image), np.asarray(first.image))

    second.generate(PROMPT, seed=2, size=96)  # a new size is a new export of the UNet and the VAE decoder
    assert openvino_backend.exports == exports + 2


@needs_openvino
def test_kit_backend_picks_the_default_backend(monkeypatch):
    monkeypatch.setenv("KIT_BACKEND", "openvino")
    assert kit.Studio(preset="tiny").backend == "openvino"
    assert kit.Studio(preset="tiny", backend="torch").backend == "torch"
    monkeypatch.setenv("KIT_BACKEND", "cuda-graphs")
    with pytest.raises(KitError, match="backend must be one of"):
        kit.Studio(preset="tiny")


@needs_openvino
def test_a_text_encoder_that_torchscript_cannot_trace_goes_through_torch_export(studio, monkeypatch, tmp_path):
    """transformers 5.5's causal mask breaks TorchScript tracing of CLIP; torch.export takes it, so
    the text encoder still runs in OpenVINO (not in torch float32, which cost 0.3 s at sd-turbo's size)."""
    import openvino
    import torch

    convert = openvino.convert_model
    taken = []

    def torchscript_refused(model, **kwargs):
        taken.append(type(model).__name__)
        if isinstance(model, torch.nn.Module):
            raise RuntimeError("Couldn't get TorchScript module by tracing.")
        return convert(model, **kwargs)

    monkeypatch.setattr(openvino, "convert_model", torchscript_refused)
    monkeypatch.setattr(openvino_backend, "cache_root", lambda: tmp_path)
    encoder = studio.pipe.text_encoder
    stand = openvino_backend.TextEncoder(encoder, None, "f32")
    ids = studio.pipe.tokenizer(
        ["a face", "a farmer in a red shirt"], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        hidden, pooled = stand(ids, return_dict=False)
        want = encoder(ids, return_dict=False)
    assert taken == ["_Traced", "ExportedProgram"] and stand.torch_fallback is None
    assert torch.allclose(hidden, want[0], atol=1e-4) and torch.allclose(pooled, want[1], atol=1e-4)
    with torch.no_grad():  # the batch and the prompt's length stayed free
        assert stand(ids[:1, :20], return_dict=False)[0].shape == (1, 20, encoder.config.hidden_size)
