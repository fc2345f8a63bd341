"""Everything that turns images into episodes: the sampler, the datasets and their pictures.

Every handwriting-like dataset returns images as float32 [1, H, W] in [0, 1], strokes high (1) on
a low (0) background, H = W = ``image_size`` (28 by default), so a model trained on one runs on
the others unchanged. Each dataset has ``len``, ``__getitem__ -> (image, class id)``, ``labels``
(per image), ``class_names`` (per class), and where the data has alphabets ``class_alphabets``
(per class) and ``alphabets`` (the distinct names).

    EpisodeSampler     N-way K-shot Q-query episodes from any of them     (sampler.py)
    Glyphs             the embedded set rendered from matplotlib's fonts  (glyphs.py)
    Omniglot           the real handwritten characters, official zips     (omniglot.py)
    omniglot_root      where they are kept ($FEWSHOT_OMNIGLOT_DIR)         (omniglot.py)
    split_classes      meta-train / validation / test over classes        (split.py)
    lake_one_shot_runs Lake et al.'s 20 one-shot runs                     (lake.py)
    Digits             scikit-learn's real handwritten digits             (digits.py)
    ImageFolder        your own images, one folder per class              (folder.py)
    plot_episode, plot_alphabets                                          (plots.py)
    Distorted          training images distorted afresh at every read     (augment.py)
"""

from fewshot_course.data.augment import Distorted
from fewshot_course.data.base import ImageDataset
from fewshot_course.data.cache import cache_dir
from fewshot_course.data.digits import Digits
from fewshot_course.data.download import DownloadError, download_file
from fewshot_course.data.folder import ImageFolder
from fewshot_course.data.glyphs import EVALUATION_ALPHABETS, Glyphs
from fewshot_course.data.lake import lake_one_shot_runs
from fewshot_course.data.omniglot import OMNIGLOT_FILES, Omniglot, available_splits, omniglot_root
from fewshot_course.data.plots import plot_alphabets, plot_episode
from fewshot_course.data.sampler import EpisodeSampler
from fewshot_course.data.split import ClassSubset, split_classes

__all__ = [
    "EpisodeSampler", "Glyphs", "Omniglot", "split_classes", "ClassSubset", "lake_one_shot_runs",
    "Digits", "ImageFolder", "plot_episode", "plot_alphabets", "ImageDataset", "cache_dir",
    "download_file", "DownloadError", "OMNIGLOT_FILES", "omniglot_root", "available_splits",
    "EVALUATION_ALPHABETS", "Distorted",
]
