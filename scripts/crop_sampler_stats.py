"""How TrainTransform's crop samplers ("mhliao", "ours") crop an ICDAR 2015 training set:
the share of draws that fall back to the whole image and the median height (shorter
side of the min-area rectangle) of the cared-for words in the 640 x 640 training crop.

Usage::

    python scripts/crop_sampler_stats.py /data/icdar2015 --draws 5
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from dbnet_fast.data import ICDAR2015Dataset, TrainTransform
from dbnet_fast.data.transforms import CROP_SAMPLERS, crop_resize_matrix, transform_polygons


def crop_stats(sampler: str, sizes, annotations, draws: int) -> dict:
    transform = TrainTransform(crop_sampler=sampler)
    out_h, out_w = transform.size
    fallbacks, heights = 0, []
    for draw in range(draws):
        for i, (size, a) in enumerate(zip(sizes, annotations)):
            rng = np.random.default_rng([draw, i])
            matrix, scaled, box, _ = transform.sample_crop(size, a.polygons, a.ignore, rng)
            fallbacks += box == (0, 0, scaled[1], scaled[0])
            fit = min(out_w / box[2], out_h / box[3])
            valid = (int(box[3] * fit), int(box[2] * fit))
            to_crop = crop_resize_matrix(box, valid) @ matrix
            for p, dont_care in zip(transform_polygons(a.polygons, to_crop), a.ignore):
                lo, hi = p.min(0), p.max(0)
                if dont_care or (hi < 0).any() or lo[0] > valid[1] or lo[1] > valid[0]:
                    continue  # not trained on, or wholly outside the crop
                heights.append(min(cv2.minAreaRect(p.astype(np.float32))[1]))
    total = draws * len(sizes)
    return {"sampler": sampler, "draws": total, "fallback": fallbacks / total,
            "median_word_height": float(np.median(heights)), "words": len(heights)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="ICDAR 2015 folder (original or MhLiao/DB layout)")
    parser.add_argument("--draws", type=int, default=1, help="crops per image (default 1)")
    args = parser.parse_args(argv)
    data = ICDAR2015Dataset(args.root, "train")
    sizes = [cv2.imread(str(path)).shape[:2] for path in data.image_paths]
    for sampler in CROP_SAMPLERS:
        s = crop_stats(sampler, sizes, data.annotations, args.draws)
        print(f"{s['sampler']}: {s['draws']} draws, whole image {s['fallback']:.1%}, median "
              f"word height in the crop {s['median_word_height']:.1f} px ({s['words']} words)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
