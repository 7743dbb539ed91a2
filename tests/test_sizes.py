"""Image sizes come from the model: a saved pipeline's own UNet and VAE configs say what it can
paint (issue 15, point 6); the named presets keep the limits written in presets.json. Either way
a size the model cannot take is refused, naming `size` and the range, before any model work."""

import json

import pytest

import kit
from kit import KitError, presets, tiny


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The tiny pipeline saved with save_pretrained: UNet sample_size 16 latents x VAE scale 4 = 64 px native."""
    return tiny.ensure_saved(tmp_path_factory.mktemp("saved")) / "pipeline"


def write_configs(folder, sample_size, vae_levels):
    (folder / "unet").mkdir(parents=True)
    (folder / "vae").mkdir()
    (folder / "unet" / "config.json").write_text(json.dumps({"sample_size": sample_size}))
    (folder / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [128] * vae_levels}))
    return folder / "unet" / "config.json", folder / "vae" / "config.json"


def test_a_folder_preset_takes_its_limits_from_the_model(folder):
    preset = presets.get(str(folder))
    assert (preset.size, preset.min_size, preset.max_size) == (64, 32, 128)  # native 64 px, half to twice


def test_a_64px_model_folder_paints_at_64px(folder):
    studio = kit.Studio(preset=str(folder))
    studio.progress_bar = False
    (art,) = studio.generate("portrait", seed=2, size=64, steps=1, guidance=0)
    assert art.image.size == (64, 64) and (art.record.width, art.record.height) == (64, 64)
    (default,) = studio.generate("portrait", seed=2, steps=1, guidance=0)  # no size: the model's native size
    assert default.image.size == (64, 64)


@pytest.mark.parametrize("size", [256, 24, 60, (64, 136)])
def test_a_size_the_model_cannot_take_is_refused_before_loading(folder, size):
    studio = kit.Studio(preset=str(folder))
    with pytest.raises(KitError, match=r"^size .*multiple of 8 from 32 to 128 px"):
        studio.generate("portrait", seed=2, size=size)
    assert studio.loaded == ()


@pytest.mark.parametrize(
    "sample_size, vae_levels, expected",
    [
        (64, 4, (512, 256, 1024)),  # sd-turbo, SD 2.1 base
        (96, 4, (768, 384, 1536)),  # SD 2.1 at 768 px
        (128, 4, (1024, 512, 2048)),  # SDXL base
        ([64, 96], 4, (768, 384, 1536)),  # (height, width) latents: the longer side
        (16, 3, (64, 32, 128)),  # the tiny preset's UNet and VAE
        (5, 3, (16, 16, 40)),  # odd sizes round to multiples of 8, inside the range
    ],
)
def test_limits_follow_sample_size_and_vae_scale(tmp_path, sample_size, vae_levels, expected):
    sizes = presets.model_sizes(*write_configs(tmp_path, sample_size, vae_levels))
    assert (sizes["size"], sizes["min_size"], sizes["max_size"]) == expected
    assert all(value % 8 == 0 for value in sizes.values())


def test_missing_configs_leave_the_defaults(tmp_path):
    assert presets.model_sizes(tmp_path / "unet" / "config.json", tmp_path / "vae" / "config.json") == {}
    assert presets.model_sizes(None, None) == {}


def test_a_broken_config_is_named(tmp_path):
    unet, vae = write_configs(tmp_path, "big", 4)
    with pytest.raises(KitError, match=r"unet.config\.json field 'sample_size' must be a positive whole number"):
        presets.model_sizes(unet, vae)
    unet.write_text("{not json")
    with pytest.raises(KitError, match="cannot read the model config"):
        presets.model_sizes(unet, vae)


def test_named_presets_keep_their_written_limits(tmp_path, monkeypatch):
    """sd-turbo's limits come from presets.json, so a typo is refused with no model and no cache at hand."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    sd_turbo = presets.get("sd-turbo")
    assert (sd_turbo.min_size, sd_turbo.size, sd_turbo.max_size) == (256, 512, 768)
    assert (presets.get("tiny").min_size, presets.get("tiny").max_size) == (64, 512)
    studio = kit.Studio(preset="sd-turbo")
    with pytest.raises(KitError, match=r"^size 5120 is not allowed .*from 256 to 768 px"):
        studio.generate("portrait", seed=1, size=5120)  # not the "kit download" error: checked first
    assert studio.loaded == ()


def test_the_size_menu_offers_a_folder_models_native_size_and_its_range():
    from kit.widgets.common import size_dropdown

    narrow = presets.Preset(name="folder", model="f", size=64, min_size=32, max_size=128)
    menu = size_dropdown(narrow)
    assert list(menu.options) == [32, 64, 96, 128] and menu.value == 64
    wide = presets.PRESETS["sd-turbo"]
    menu = size_dropdown(wide)
    assert menu.value == wide.size and menu.options[0] == wide.min_size and menu.options[-1] == wide.max_size
    assert all(b - a == 64 for a, b in zip(menu.options, menu.options[1:]))
