"""Train the tiny preset's models on the toy world and write the weights the kit ships.

    python scripts/train_tiny.py                     # everything: about an hour on 2 CPU cores
    python scripts/train_tiny.py --stages unet,card  # again from a stage, reusing earlier ones
    python scripts/train_tiny.py --scale 0.002 --out /tmp/t   # a few steps (what the tests run)

Stages, in order (each reads what the earlier ones wrote to --out):
  vae      the AutoencoderKL (64 px <-> 4 x 16 x 16 latents) and its latent scaling factor
  clip     the open_clip model the Embedder uses (contrastive, on captions with words left out)
  taesd    the TAESD-shaped preview decoder (and encoder), distilled from the VAE's latents
  unet     the text encoder and the UNet (v-prediction, sd-turbo's noise schedule at zero terminal SNR)
  roles    both again, on captions that name the role and leave its attributes out more often
  inpaint  the 9-channel inpainting UNet, started from the text-to-image UNet
  card     weight hashes, the toy world's vocabulary and planted skews, zero-shot accuracies

Everything is seeded (--seed): the same machine and thread count give the same weights. Weights
are written as float16 safetensors; the report (report.json) keeps every stage's losses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit import embed, tiny, toyworld  # noqa: E402

STAGES = ("vae", "clip", "taesd", "unet", "roles", "inpaint", "card")
STEPS = {"vae": 2400, "clip": 2400, "taesd": 1500, "unet": 5000, "inpaint": 1500, "roles": 2000}
BATCH = {"vae": 16, "clip": 128, "taesd": 32, "unet": 64, "inpaint": 64, "roles": 64}
LR = {"vae": 1e-3, "clip": 1e-3, "taesd": 2e-3, "unet": 1e-3, "inpaint": 5e-4, "roles": 5e-4}
TRAIN_IMAGES = 24000
HELD_OUT_SEED = 10_000  # the card's accuracies use pictures from this seed on, never trained on
CAPTIONS_PER_IMAGE = 4
KL_WEIGHT = 1e-5


# ---------------------------------------------------------------- helpers


class Log:
    """Mean loss every `every` steps, printed and kept for the report."""

    def __init__(self, stage: str, steps: int, every: int = 100):
        self.stage, self.steps, self.every = stage, steps, max(1, min(every, steps))
        self.start, self.window, self.curve = time.time(), [], []

    def __call__(self, step: int, loss: float):
        self.window.append(loss)
        if (step + 1) % self.every == 0 or step + 1 == self.steps:
            mean = float(np.mean(self.window))
            self.curve.append([step + 1, round(mean, 5)])
            self.window = []
            print(
                f"{self.stage:>8} {step + 1:>5}/{self.steps}  loss {mean:.4f}  {time.time() - self.start:6.0f} s",
                flush=True,
            )

    def summary(self, **extra) -> dict:
        return {"steps": self.steps, "seconds": round(time.time() - self.start, 1), "loss": self.curve, **extra}


def schedule(optimizer, steps: int, warmup: int = 100):
    """Linear warm-up, then cosine decay to a tenth."""
    warmup = min(warmup, max(1, steps // 10))

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, 64, 64, 3) -> float (n, 3, 64, 64) in [-1, 1], the diffusers convention."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def save_weights(module: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path))
    path.chmod(0o644)


def load_weights(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path)))
    return module


def fit(stage, params, steps, lr, loss_fn, seed):
    """The training loop every stage shares: AdamW (no weight decay, so the rows of the
    vocabulary no caption uses keep their seeded values), warm-up and cosine decay."""
    optimizer = torch.optim.AdamW([p for p in params if p.requires_grad], lr=lr, weight_decay=0.0)
    lr_schedule = schedule(optimizer, steps)
    rng = np.random.default_rng(seed)
    log = Log(stage, steps)
    for step in range(steps):
        loss = loss_fn(rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in params if p.requires_grad], 1.0)
        optimizer.step()
        lr_schedule.step()
        log(step, loss.item())
    return log


class Data:
    """The training pictures and, per picture, a few tokenised captions with words left out."""

    def __init__(self, n: int, seed: int):
        start = time.time()
        self.images, self.portraits = toyworld.dataset(n, seed=seed)
        self.pixels = to_tensor(self.images)
        rng = np.random.default_rng(seed + 1)
        self.captions = [
            [toyworld.caption(p, rng, drop=0.3) for _ in range(CAPTIONS_PER_IMAGE)] for p in self.portraits
        ]
        print(f"    data {n} pictures, {n * CAPTIONS_PER_IMAGE} captions in {time.time() - start:.0f} s", flush=True)

    def batch(self, rng, size):
        return rng.integers(len(self.images), size=size), rng.integers(CAPTIONS_PER_IMAGE, size=size)

    def role_captions(self, seed: int) -> list[list[str]]:
        """The captions with the second half of each picture's replaced by ones that always name
        the role and leave each other attribute out with probability 0.6."""
        rng = np.random.default_rng(seed)
        half = CAPTIONS_PER_IMAGE // 2
        return [
            captions[:half]
            + [toyworld.caption(portrait, rng, drop=0.6, subject_drop=0.0) for _ in range(half, CAPTIONS_PER_IMAGE)]
            for portrait, captions in zip(self.portraits, self.captions)
        ]

    def tokens(self, kind: str, captions: list[list[str]] | None = None) -> torch.Tensor:
        """(n, captions per image, 77) ids of `captions` (default: the training captions) for the
        pipeline's tokenizer ("pipeline") or open_clip's ("clip")."""
        captions = self.captions if captions is None else captions
        flat = [c for per_image in captions for c in per_image]
        if kind == "pipeline":  # one caption in twenty is empty, so the model also learns the unconditional picture
            rng = np.random.default_rng(len(flat))
            flat = ["" if rng.random() < 0.05 else c for c in flat]
            tokenizer = tiny.clip_tokenizer()
            ids = tokenizer(flat, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        else:
            import open_clip

            ids = open_clip.get_tokenizer(embed.TINY_CLIP)(flat)
        return ids.view(len(captions), CAPTIONS_PER_IMAGE, -1)


# ---------------------------------------------------------------- stages


def train_vae(data: Data, args) -> dict:
    vae = tiny.build_vae(args.seed, trained=False).train()
    steps, size = args.steps("vae"), BATCH["vae"]

    def loss_fn(rng):
        idx, _ = data.batch(rng, size)
        x = data.pixels[idx]
        if rng.random() < 0.5:
            x = x.flip(-1)
        posterior = vae.encode(x).latent_dist
        rec = vae.decode(posterior.sample()).sample
        return F.l1_loss(rec, x) + F.mse_loss(rec, x) + KL_WEIGHT * posterior.kl().mean()

    log = fit("vae", list(vae.parameters()), steps, LR["vae"], loss_fn, args.seed)
    vae.eval()
    with torch.no_grad():
        means = torch.cat(
            [vae.encode(data.pixels[i : i + 256]).latent_dist.mean for i in range(0, min(4096, len(data.pixels)), 256)]
        )
    scaling = float(1 / means.std())
    save_weights(vae, args.out / "vae.safetensors")
    return log.summary(scaling_factor=round(scaling, 5))


def trained_vae(args):
    report = json.loads((args.out / "report.json").read_text())
    vae = load_weights(tiny.build_vae(args.seed, trained=False), args.out / "vae.safetensors").eval()
    return vae.requires_grad_(False), report["vae"]["scaling_factor"]


def latents(vae, data: Data, scaling: float):
    """Mean and standard deviation of every picture's latent, scaled as the UNet sees them."""
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, len(data.pixels), 256):
            dist = vae.encode(data.pixels[i : i + 256]).latent_dist
            means.append(dist.mean * scaling)
            stds.append(dist.std * scaling)
    return torch.cat(means), torch.cat(stds)


def clip_inputs(pixels: torch.Tensor) -> torch.Tensor:
    """[-1, 1] pictures normalised as open_clip's preprocessing does (they are 64 px already)."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return ((pixels + 1) / 2 - mean) / std


def train_clip(data: Data, args) -> dict:
    model = embed.build_tiny_clip(args.seed).train()
    tokens = data.tokens("clip")
    steps, size = args.steps("clip"), BATCH["clip"]
    labels = torch.arange(size)

    def loss_fn(rng):
        idx, which = data.batch(rng, size)
        images = clip_inputs(data.pixels[idx])
        image_vectors, text_vectors, scale = model(images, tokens[idx, which])
        logits = scale * image_vectors @ text_vectors.T
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    log = fit("clip", list(model.parameters()), steps, LR["clip"], loss_fn, args.seed)
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))
    save_weights(model, args.out / "clip.safetensors")
    return log.summary(logit_scale=round(float(model.logit_scale.detach().exp()), 2))


def train_taesd(data: Data, args) -> dict:
    vae, scaling = trained_vae(args)
    means, _ = latents(vae, data, scaling)
    preview = tiny.build_preview_vae(args.seed, trained=False).train()
    steps, size = args.steps("taesd"), BATCH["taesd"]

    def loss_fn(rng):
        idx, _ = data.batch(rng, size)
        x, z = data.pixels[idx], means[idx]
        decoded = preview.decode(z).sample
        encoded = preview.encode(x).latents
        return F.l1_loss(decoded, x) + F.mse_loss(decoded, x) + F.mse_loss(encoded, z)

    log = fit("taesd", list(preview.parameters()), steps, LR["taesd"], loss_fn, args.seed)
    save_weights(preview, args.out / "taesd.safetensors")
    return log.summary()


def noise_schedule():
    """alpha-bar per timestep, as the tiny preset's scheduler has it: sd-turbo's scaled linear betas
    over 1000 steps, rescaled to zero signal at the last step (see tiny.SCHEDULER)."""
    return tiny._scheduler().alphas_cumprod.clone()


def noisy(z0: torch.Tensor, rng, alpha_bar: torch.Tensor):
    """(noisy latents, timesteps, target): the target is v = sqrt(a) eps - sqrt(1 - a) z0."""
    t = torch.from_numpy(rng.integers(len(alpha_bar), size=len(z0)))
    eps = torch.randn_like(z0)
    a = alpha_bar[t].view(-1, 1, 1, 1)
    return a.sqrt() * z0 + (1 - a).sqrt() * eps, t, a.sqrt() * eps - (1 - a).sqrt() * z0


def train_denoiser(data: Data, args, stage: str, captions=None, resume: bool = False) -> dict:
    """Train the text encoder and the UNet together (v-prediction on noise_schedule()) on `captions`
    (default: the training captions), from their seeded random weights or, with `resume`, from what
    an earlier stage saved in --out."""
    vae, scaling = trained_vae(args)
    means, stds = latents(vae, data, scaling)
    tokens = data.tokens("pipeline", captions)
    text_encoder = tiny.build_text_encoder(args.seed, trained=False)
    unet = tiny.build_unet(args.seed, trained=False)
    if resume:
        text_encoder = load_weights(text_encoder, args.out / "text_encoder.safetensors")
        unet = load_weights(unet, args.out / "unet.safetensors")
    text_encoder.train()
    unet.train()
    alpha_bar = noise_schedule()
    steps, size = args.steps(stage), BATCH[stage]

    def loss_fn(rng):
        idx, which = data.batch(rng, size)
        z0 = means[idx] + stds[idx] * torch.randn_like(means[idx])
        zt, t, target = noisy(z0, rng, alpha_bar)
        context = text_encoder(tokens[idx, which])[0]
        return F.mse_loss(unet(zt, t, encoder_hidden_states=context).sample, target)

    log = fit(stage, [*text_encoder.parameters(), *unet.parameters()], steps, LR[stage], loss_fn, args.seed)
    save_weights(text_encoder, args.out / "text_encoder.safetensors")
    save_weights(unet, args.out / "unet.safetensors")
    return log.summary()


def train_unet(data: Data, args) -> dict:
    return train_denoiser(data, args, "unet")


def train_roles(data: Data, args) -> dict:
    """Go on training the text encoder and the UNet on captions that name the role and leave the
    other attributes out more often. After the unet stage the model draws what the words name, but
    a role alone moves it only part of the way to the shares planted in the toy world (its baker
    wore white 54% of the time where the toy world has 70%; 66% after this stage): the shares are
    what lesson 5's audit is about."""
    return train_denoiser(data, args, "roles", data.role_captions(args.seed + 2), resume=True)


def random_masks(rng, n: int) -> torch.Tensor:
    """(n, 1, 64, 64) masks, 1 = damaged: a few rectangles and blobs covering 5-50% of the picture."""
    masks = np.zeros((n, 1, toyworld.SIZE, toyworld.SIZE), dtype=np.float32)
    yy, xx = np.mgrid[0 : toyworld.SIZE, 0 : toyworld.SIZE]
    for mask in masks:
        for _ in range(rng.integers(1, 4)):
            cx, cy = rng.uniform(8, 56, size=2)
            w, h = rng.uniform(4, 18, size=2)
            if rng.random() < 0.5:
                mask[0][(abs(xx - cx) < w) & (abs(yy - cy) < h)] = 1
            else:
                mask[0][((xx - cx) / w) ** 2 + ((yy - cy) / h) ** 2 < 1] = 1
    return torch.from_numpy(masks)


def train_inpaint(data: Data, args) -> dict:
    vae, scaling = trained_vae(args)
    means, stds = latents(vae, data, scaling)
    tokens = data.tokens("pipeline")
    text_encoder = load_weights(
        tiny.build_text_encoder(args.seed, trained=False), args.out / "text_encoder.safetensors"
    )
    text_encoder.eval().requires_grad_(False)
    unet = tiny.build_unet(args.seed, trained=False, inpaint=True).train()
    # start from the text-to-image UNet: its weights, and zeros for the mask and masked-image inputs
    source = load_weights(tiny.build_unet(args.seed, trained=False), args.out / "unet.safetensors").state_dict()
    weight = torch.zeros_like(unet.conv_in.weight)
    weight[:, :4] = source.pop("conv_in.weight")
    unet.load_state_dict({**source, "conv_in.weight": weight})
    alpha_bar = noise_schedule()
    scale = 2 ** (len(tiny.VAE["block_out_channels"]) - 1)
    steps, size = args.steps("inpaint"), BATCH["inpaint"]

    def loss_fn(rng):
        idx, which = data.batch(rng, size)
        x = data.pixels[idx]
        mask = random_masks(rng, size)
        with torch.no_grad():  # what StableDiffusionInpaintPipeline feeds the UNet
            masked = vae.encode(x * (mask < 0.5)).latent_dist.sample() * scaling
            context = text_encoder(tokens[idx, which])[0]
        small_mask = F.interpolate(mask, size=(x.shape[-2] // scale, x.shape[-1] // scale))
        z0 = means[idx] + stds[idx] * torch.randn_like(means[idx])
        zt, t, target = noisy(z0, rng, alpha_bar)
        inputs = torch.cat([zt, small_mask, masked], dim=1)
        return F.mse_loss(unet(inputs, t, encoder_hidden_states=context).sample, target)

    log = fit("inpaint", list(unet.parameters()), steps, LR["inpaint"], loss_fn, args.seed)
    save_weights(unet, args.out / "inpaint_unet.safetensors")
    return log.summary()


def zero_shot(model, tokenizer, images: np.ndarray, truth: list, labels: list[str]) -> float:
    """Share of pictures whose nearest label text (by CLIP cosine) is the true one."""
    with torch.no_grad():
        image_vectors = F.normalize(model.encode_image(clip_inputs(to_tensor(images))), dim=-1)
        text_vectors = F.normalize(model.encode_text(tokenizer(labels)), dim=-1)
    guess = (image_vectors @ text_vectors.T).argmax(-1).numpy()
    return float(np.mean([labels[g] == t for g, t in zip(guess, truth)]))


def write_card(args) -> dict:
    import open_clip

    report = json.loads((args.out / "report.json").read_text())
    model = load_weights(embed.build_tiny_clip(args.seed), args.out / "clip.safetensors").eval()
    tokenizer = open_clip.get_tokenizer(embed.TINY_CLIP)
    images, portraits = toyworld.dataset(args.held_out, seed=HELD_OUT_SEED)
    accuracy = {
        "background": zero_shot(
            model,
            tokenizer,
            images,
            [f"{p.background} background" for p in portraits],
            [f"{c} background" for c in toyworld.BACKGROUNDS],
        ),
        "clothing": zero_shot(
            model,
            tokenizer,
            images,
            [f"wearing {p.clothing} clothes" for p in portraits],
            [f"wearing {c} clothes" for c in toyworld.CLOTHING],
        ),
        "headwear": zero_shot(
            model,
            tokenizer,
            images,
            [toyworld.HAT if p.hat else toyworld.NO_HAT for p in portraits],
            [toyworld.HAT, toyworld.NO_HAT],
        ),
        "rendering": zero_shot(
            model,
            tokenizer,
            images,
            [toyworld.RENDERINGS[p.rendering] for p in portraits],
            list(toyworld.RENDERINGS.values()),
        ),
    }
    weights = {}
    for path in sorted(args.out.glob("*.safetensors")):
        weights[path.stem] = {
            "file": path.name,
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    card = {
        "about": "The tiny preset's toy world: what its models were trained on, the skews planted in it "
        "(the ground truth for lesson 5's audit) and the shipped weights. Written by scripts/train_tiny.py.",
        "vocabulary": toyworld.vocabulary(),
        "skews": toyworld.truth(),
        "weights": weights,
        "vae_scaling_factor": report["vae"]["scaling_factor"],
        "training": {
            "seed": args.seed,
            "pictures": args.images,
            "scale": args.scale,
            "seconds": round(sum(report[s]["seconds"] for s in STAGES[:-1] if s in report), 1),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "clip_zero_shot_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        "held_out_pictures": args.held_out,
    }
    (args.out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return {"clip_zero_shot_accuracy": card["clip_zero_shot_accuracy"], "seconds": 0}


# ---------------------------------------------------------------- main


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=tiny.WEIGHTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every stage's steps")
    parser.add_argument("--images", type=int, default=TRAIN_IMAGES)
    parser.add_argument("--held-out", type=int, default=2000)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}: choose from {', '.join(STAGES)}")
    args.steps = lambda stage: max(2, round(STEPS[stage] * args.scale))
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    report_path = args.out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}

    torch.manual_seed(args.seed)
    data = Data(args.images, args.seed) if set(stages) - {"card"} else None
    train = {
        "vae": train_vae,
        "clip": train_clip,
        "taesd": train_taesd,
        "unet": train_unet,
        "inpaint": train_inpaint,
        "roles": train_roles,
    }
    for stage in STAGES:
        if stage not in stages:
            continue
        torch.manual_seed(args.seed + STAGES.index(stage))
        report[stage] = write_card(args) if stage == "card" else train[stage](data, args)
        report_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
