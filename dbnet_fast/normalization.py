"""The two input normalisations of the project's models, in one leaf module
that both :mod:`dbnet_fast.data` and :mod:`dbnet_fast.model` may import.

- ImageNet (DBNet, torchvision backbones): RGB, (x / 255 - mean) / std;
- PP-OCR (PaddleOCR's detectors): BGR, (x / 255 - 0.5) / 0.5.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)
PPOCR_MEAN = 0.5
PPOCR_STD = 0.5
