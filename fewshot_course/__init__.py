"""fewshot_course: the library behind the few-shot learning course.

Submodules: ``data`` (datasets and the episode sampler), ``models``, ``maml``, ``methods``
(ProtoNet, the generative method, baselines), ``evaluation``, ``training``, ``tasks``
(the sinusoid family) and ``widgets``. learn2learn is optional: nothing here imports it.
"""

from fewshot_course._device import device
from fewshot_course.episodes import Episode, EpisodeBatch
from fewshot_course.progress import progress
from fewshot_course.seeding import seed_everything

__version__ = "0.1.0"
__all__ = ["device", "Episode", "EpisodeBatch", "progress", "seed_everything", "__version__"]
