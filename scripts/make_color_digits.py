"""Write the colour study's image folder: digits 0-4 drawn in red or in green, 10 classes.

The red and the green have the same luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B), so a
grayscale copy of an image cannot tell its two colour classes apart: exactly the information
`data.grayscale=true` throws away. The strokes come from scikit-learn's real digits.

    python scripts/make_color_digits.py data/color_digits
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

# 0.299 * 255 = 76.2 and 0.587 * 130 = 76.3: the same 8-bit gray
COLOURS = {"red": (255, 0, 0), "green": (0, 130, 0)}


def write(root: Path, size: int = 16, seed: int = 0) -> int:
    digits = load_digits()
    rng = np.random.default_rng(seed)
    count = 0
    for image, label in zip(digits.images, digits.target, strict=True):
        if label > 4:
            continue
        colour = rng.choice(list(COLOURS))
        stroke = (image / 16.0)[..., None] * np.array(COLOURS[colour])
        pixels = Image.fromarray(stroke.round().astype(np.uint8), "RGB").resize(
            (size, size), Image.Resampling.BILINEAR
        )
        folder = root / f"{label}_{colour}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels.save(folder / f"{count:05d}.png")
        count += 1
    return count


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data/color_digits")
    print(f"wrote {write(target)} images to {target}")
