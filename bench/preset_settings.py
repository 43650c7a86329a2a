"""A preset's settings for the benches: its training settings, and the batch and learning rate it names for a GPU.

Each preset file names, beside its paper-sized `batch_size` and `learning_rate`, a `gpu_batch_size` that keeps a GPU
busy and the `gpu_learning_rate` that goes with it. The benches read the file themselves and take those two keys out,
so that what remains is exactly what `pygenbrix.cli.read_config` checks and `pygenbrix train` uses.
"""
import yaml
from pygenbrix.cli import preset_path, preset_names

GPU_KEYS = ("gpu_batch_size", "gpu_learning_rate")


def preset_settings(name: str) -> tuple:
    "`(settings, gpu)`: the preset's training settings without the GPU keys, and `{'batch_size': ..., 'learning_rate': ...}` for a GPU."
    if name not in preset_names(): raise ValueError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")
    settings = yaml.safe_load(preset_path(name).read_text())
    missing = [key for key in GPU_KEYS if key not in settings]
    if missing: raise ValueError(f"preset {name!r} names no {' and no '.join(missing)}; every preset gives both beside its batch_size")
    gpu = {"batch_size": settings.pop("gpu_batch_size"), "learning_rate": settings.pop("gpu_learning_rate")}
    return settings, gpu


def event_shape_of(settings: dict) -> tuple:
    "`(event_shape, binary)` of the images the preset trains on."
    dataset = settings.get("dataset", "digits")
    if dataset == "mnist":
        return ((1, 32, 32) if settings.get("pad_to_32") else (1, 28, 28)), settings.get("binarize", "dynamic") != "none"
    if dataset == "cifar10": return (3, 32, 32), False
    raise ValueError(f"the benches know the image shapes of mnist and cifar10; preset dataset {dataset!r}")
