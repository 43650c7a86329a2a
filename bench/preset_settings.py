"""A preset's settings for the benches: its training settings, and the batch and learning rate it names for a GPU.

Each preset file names, beside its paper-sized `batch_size` and `learning_rate`, a `gpu_batch_size` that keeps a GPU
busy and the `gpu_learning_rate` that goes with it (`pygenbrix.cli.GPU_SETTINGS`). The benches read the preset as
`pygenbrix train` does (`read_preset`, every value checked) and take those two keys out.
"""
from pygenbrix.cli import GPU_SETTINGS, read_preset


def preset_settings(name: str) -> tuple:
    "`(settings, gpu)`: the preset's training settings without the GPU keys, and `{'batch_size': ..., 'learning_rate': ...}` for a GPU."
    settings = read_preset(name)
    missing = [key for key in GPU_SETTINGS if settings.get(key) is None]
    if missing: raise ValueError(f"preset {name!r} names no {' and no '.join(missing)}; every preset gives both beside its batch_size")
    gpu = {setting: settings.pop(key) for key, setting in GPU_SETTINGS.items()}
    return settings, gpu


def event_shape_of(settings: dict) -> tuple:
    "`(event_shape, binary)` of the images the preset trains on."
    dataset = settings.get("dataset", "digits")
    if dataset == "mnist":
        return ((1, 32, 32) if settings.get("pad_to_32") else (1, 28, 28)), settings.get("binarize", "dynamic") != "none"
    if dataset == "cifar10": return (3, 32, 32), False
    raise ValueError(f"the benches know the image shapes of mnist and cifar10; preset dataset {dataset!r}")
