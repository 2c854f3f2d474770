"""training: offline data for the learned audio→mouth model and its reproducible training.

Public API:
    DataRecipe, generate_dataset(recipe) -> Dataset         synthetic TTS speech + rule targets
    fit_track_to_video(path) -> MotionTrack                 real video → fitted mouth channels
    build_examples_from_video(path) -> list[Example]        … plus its audio, as training data
    TrainParams, train(dataset, params) -> (model, summary)
    TrainingRun, run(job) -> TrainingResult                 what `mouthpiece train` does
Nothing heavy is imported here; torch, the TTS engines and the face models load on use.
"""

from mouthpiece.training.data import DataRecipe, Dataset, Example, generate_dataset
from mouthpiece.training.loop import TrainParams, train
from mouthpiece.training.pipeline import TrainingResult, TrainingRun, run
from mouthpiece.training.video import build_examples_from_video, fit_track_to_video

__all__ = [
    "DataRecipe", "Dataset", "Example", "TrainParams", "TrainingResult", "TrainingRun",
    "build_examples_from_video", "fit_track_to_video", "generate_dataset", "run", "train",
]
