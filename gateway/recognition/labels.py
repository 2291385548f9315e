"""The labels /api/image-recognition/classify chooses among when the caller names none.

CLIP zero-shot: each label becomes the prompt "a photo of a {label}." (the template of CLIP's
paper), its text embedding is compared with the image's, and the cosines, scaled by CLIP's
logit scale (100, the trained value of ViT-B/32), are turned into probabilities by a softmax
over the labels, as CLIP's own zero-shot classifier does. The default set is everyday photo
subjects (the COCO super-categories' members people photograph most, and scenes), so the
answer is a distribution over these labels, not an ImageNet classifier's."""

from __future__ import annotations

from typing import Final

PROMPT: Final = "a photo of a {label}."
LOGIT_SCALE: Final = 100.0
MAX_LABELS: Final = 100
MAX_LABEL_CHARS: Final = 100
DEFAULT_LABELS: Final = (
    "person",
    "group of people",
    "portrait",
    "cat",
    "dog",
    "bird",
    "horse",
    "car",
    "bicycle",
    "motorcycle",
    "airplane",
    "boat",
    "train",
    "building",
    "city street",
    "landscape",
    "beach",
    "mountain",
    "forest",
    "food",
    "cake",
    "coffee cup",
    "flower",
    "plant",
    "computer",
    "phone",
    "book",
    "chair",
    "table",
    "room interior",
    "rocket",
    "astronaut",
    "sports",
    "text document",
    "drawing",
)
