"""Write a class-per-folder tree of small PNGs, for trying and timing ``data=image_folder``.

    python scripts/make_image_tree.py DIR [--images 10000] [--size 28]

The images are scikit-learn's 1,797 handwritten digits, scaled up to SIZE x SIZE, each copy
shifted by up to 2 pixels with a little noise, so DIR/<digit>/<n>.png holds real-looking,
distinct images. Seeded: the same command writes the same tree.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=28)
    args = parser.parse_args()

    digits = load_digits()
    rng = np.random.default_rng(0)
    for label in range(10):
        (args.out / str(label)).mkdir(parents=True, exist_ok=True)
    for n in range(args.images):
        i = n % len(digits.images)
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
        image = Image.fromarray(pixels, "L").resize((args.size, args.size), Image.BILINEAR)
        array = np.roll(np.asarray(image, dtype=np.float32), rng.integers(-2, 3, 2), (0, 1))
        array = np.clip(array + rng.normal(0, 8, array.shape), 0, 255).astype(np.uint8)
        Image.fromarray(array, "L").save(args.out / str(digits.target[i]) / f"{n:05d}.png")
    print(f"wrote {args.images} images to {args.out}")


if __name__ == "__main__":
    main()
