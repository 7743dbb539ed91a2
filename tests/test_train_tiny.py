"""scripts/train_tiny.py, the script that trains the tiny preset, run for a few steps of every stage:
it writes weights the kit's builders load, a report with loss curves and a card that names its files."""

import dataclasses
import hashlib
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from kit import embed, tiny, toyworld

pytestmark = pytest.mark.slow  # runs the training stages

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_tiny.py"
WEIGHTS = {"clip", "vae", "taesd", "text_encoder", "unet", "inpaint_unet"}
TRAINED = ("vae", "clip", "taesd", "unet", "roles", "inpaint")
SMOKE = ["--scale", "0.002", "--images", "64", "--held-out", "32", "--threads", "1"]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_tiny", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(script, tmp_path_factory):
    """(folder, the report main returned): every stage, a few steps each (about 15 s)."""
    out = tmp_path_factory.mktemp("trained")
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):  # the script seeds torch's global RNG
        report = script.main(["--out", str(out), *SMOKE])
    torch.set_num_threads(threads)
    return out, report


def load(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_every_file_is_written(trained):
    out, _ = trained
    names = {p.name for p in out.iterdir()}
    assert names == {f"{w}.safetensors" for w in WEIGHTS} | {"card.json", "report.json"}, names
    for name in WEIGHTS:  # float16, as shipped
        assert {t.dtype for t in load(out / f"{name}.safetensors").values() if t.is_floating_point()} == {torch.float16}


BUILDERS = {
    "vae": lambda: tiny.build_vae(trained=False),
    "taesd": lambda: tiny.build_preview_vae(trained=False),
    "text_encoder": lambda: tiny.build_text_encoder(trained=False),
    "unet": lambda: tiny.build_unet(trained=False),
    "inpaint_unet": lambda: tiny.build_unet(trained=False, inpaint=True),
    "clip": lambda: embed.build_tiny_clip(),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_weights_fit_the_builders_and_were_trained(trained, name):
    out, _ = trained
    weights = load(out / f"{name}.safetensors")
    module = BUILDERS[name]()
    start = {k: v.to(torch.float16) for k, v in module.state_dict().items()}
    module.load_state_dict(weights)  # strict: every key, every shape
    assert weights.keys() == start.keys()
    assert all(torch.isfinite(v).all() for v in weights.values()), name
    changed = [k for k in weights if not torch.equal(weights[k], start[k].to(weights[k].dtype))]
    assert changed, f"{name}: the written weights are the seeded random ones"


def test_inpaint_unet_takes_nine_channels(trained):
    out, _ = trained
    assert load(out / "inpaint_unet.safetensors")["conv_in.weight"].shape[1] == 9
    assert load(out / "unet.safetensors")["conv_in.weight"].shape[1] == 4


def test_clip_loads_through_the_embedders_loader(trained):
    """The preset path a user takes: a local safetensors file handed to open_clip."""
    from kit import presets

    out, _ = trained
    preset = dataclasses.replace(presets.get("tiny"), clip_pretrained=str(out / "clip.safetensors"))
    model, _, _ = embed.load_clip(preset, device="cpu")
    weights = load(out / "clip.safetensors")
    ours = model.state_dict()
    assert all(torch.equal(ours[k], weights[k].to(ours[k].dtype)) for k in weights)


def test_report_has_a_finite_loss_curve_per_stage(trained):
    out, returned = trained
    report = json.loads((out / "report.json").read_text())
    assert report == json.loads(json.dumps(returned))
    assert set(report) == {*TRAINED, "card"}
    for stage in TRAINED:
        entry = report[stage]
        curve = entry["loss"]
        assert curve and entry["steps"] >= 2, stage
        assert [step for step, _ in curve] == sorted(step for step, _ in curve) and curve[-1][0] == entry["steps"]
        assert all(isinstance(loss, float) and math.isfinite(loss) for _, loss in curve), stage
        assert math.isfinite(entry["seconds"]) and entry["seconds"] >= 0
    scaling = report["vae"]["scaling_factor"]
    assert math.isfinite(scaling) and scaling > 0
    assert 0 < report["clip"]["logit_scale"] <= 100


def test_card_names_the_written_files(trained):
    out, report = trained
    card = json.loads((out / "card.json").read_text())
    assert set(card["weights"]) == WEIGHTS
    for name, entry in card["weights"].items():
        path = out / entry["file"]
        assert path.name == f"{name}.safetensors"
        assert entry["bytes"] == path.stat().st_size, name
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), name
    assert card["vae_scaling_factor"] == report["vae"]["scaling_factor"]
    assert card["vocabulary"] == json.loads(json.dumps(toyworld.vocabulary()))
    assert card["skews"] == json.loads(json.dumps(toyworld.truth()))
    assert card["training"]["pictures"] == 64 and card["training"]["scale"] == 0.002 and card["held_out_pictures"] == 32
    accuracy = card["clip_zero_shot_accuracy"]
    assert set(accuracy) == {"background", "clothing", "headwear", "rendering"}
    assert all(0 <= v <= 1 for v in accuracy.values()) and accuracy == report["card"]["clip_zero_shot_accuracy"]


def test_training_adds_noise_on_the_schedule_the_pipeline_samples_with(script):
    """Zero terminal SNR: at the last timestep no signal is left, in training as in sampling, so the
    first sampling step starts from what the model was trained on (pure noise)."""
    pipeline_schedule = tiny.build_pipeline(trained=False).scheduler.alphas_cumprod
    assert torch.equal(script.noise_schedule(), pipeline_schedule)
    assert pipeline_schedule[-1] < 1e-6 and pipeline_schedule[0] > 0.99  # sd-turbo's own schedule ends at 0.0047
    assert bool((pipeline_schedule[1:] < pipeline_schedule[:-1]).all())


def test_role_captions_name_the_role_and_keep_the_first_half(script):
    data = script.Data(40, seed=3)
    captions = data.role_captions(seed=4)
    half = script.CAPTIONS_PER_IMAGE // 2
    for portrait, before, after in zip(data.portraits, data.captions, captions):
        assert after[:half] == before[:half]
        assert all(text.split(", ")[0].endswith(portrait.role) for text in after[half:]), after
    assert captions == data.role_captions(seed=4) and captions != data.role_captions(seed=5)


def test_unknown_stage_is_refused_before_any_work(script, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--out", str(out), "--stages", "vae,paint", *SMOKE])
    assert exit_info.value.code == 2
    assert "unknown stages ['paint']" in capsys.readouterr().err
    assert not out.exists()
