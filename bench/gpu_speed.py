"""The speed of every preset, in one table: training through the engine and through a bare loop, TFLOP/s, precision,
compilation, sampling, and the operators a training step runs.

Each preset's model is built at the preset's size and trained on random images of the preset's shape (binarised
per batch where the preset's are), held on the device, with the preset's optimizer and learning rate and value checks
off (`validation(False)`). For each preset:

- `engine`: training images/s through `DistributionTrainer` (`data_on_device=True`, no clipping, skipping or averaging,
  so that it does the bare loop's work), at the preset's `batch_size` and at its `gpu_batch_size`;
- `bare`: images/s of a plain PyTorch loop over the same model, loss (`-log_prob(x)["log_prob"].mean()`), optimizer and
  batch, no Lightning, in the same run; and the ratio engine / bare;
- TFLOP/s achieved: training FLOPs per image (forward and backward, counted once by `torch.utils.flop_counter.FlopCounterMode`)
  times images/s;
- 32-bit (TF32 matrix products allowed on CUDA) against `bf16-mixed`, and eager against `torch.compile`, at the GPU batch;
- the time to draw 16 images with each of the model's samplers (the PixelCNN's cached `fast` one and its `naive` one);
- aten operators per training step (forward, backward and the optimizer, counted by a `TorchDispatchMode`), and the
  model's parameter tensors;
- aten operators of one 16-image draw with the default sampler, and its host reads (counted apart from the timing).

Every timing is time-boxed: warm-up steps (start-up, cuDNN's autotuning, compilation) are left out, the device's queue is
drained before the clock starts and before it stops. A run stops starting cells once its `--budget-seconds` is spent
(those cells say so). The table goes to stdout (one JSON line per cell, then markdown) and to the results files in
`--output-dir`.

    python bench/gpu_speed.py                                     # on a GPU: every preset at full size, under 5 minutes on an H200
    python bench/gpu_speed.py --smoke                             # anywhere: tiny models, a couple of steps per cell, seconds
    python bench/gpu_speed.py --count-only --device cpu           # operators, parameter tensors and FLOPs per preset, at full size
"""
import argparse, collections, contextlib, inspect, json, logging, math, statistics, sys, time, warnings
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preset_settings import preset_settings, event_shape_of
from results_files import run_record, short_commit, write_results
from pygenbrix.budget import describe_device, format_seconds
from pygenbrix.cli import model_factory
from pygenbrix.core import validation
from pygenbrix.data import ImageTensorDataset
from pygenbrix.train import DistributionTrainer, OPTIMIZERS

# cheapest first, so that a short budget still measures most presets; compiled cells come after every eager one
PRESETS = ["mnist-pixelcnn", "mnist-vae", "mnist-parallelcnn", "mnist-gated-pixelcnn", "mnist-vdvae", "mnist-glow", "cifar10-pixelcnn"]
# compiling Glow's 96 flow steps and VDVAE's 23 blocks took over 100 s each on the H200 (2026-12-04): opt in with --compile
COMPILED_BY_DEFAULT = ["mnist-pixelcnn", "mnist-vae", "mnist-parallelcnn"]
SMOKE_OPTIONS = {
    "mnist-pixelcnn": {"channels": 8, "layers": 2},
    "mnist-gated-pixelcnn": {"channels": 8, "layers": 2},
    "cifar10-pixelcnn": {"channels": 8, "layers": 2, "num_mixtures": 2},
    "mnist-vae": {"latent_dim": 4, "hidden_size": 32},
    "mnist-parallelcnn": {"hidden_channels": 8, "num_blocks": 1},
    "mnist-glow": {"num_levels": 2, "steps_per_level": 2, "hidden_channels": 16},
    "mnist-vdvae": {"width": 16, "spec": "28x1,14x1,7x1"},
}
SMOKE_BATCHES = (4, 8)  # the preset's batch and the GPU batch, in smoke mode
COMPILE_RESERVE_SECONDS = 60  # a compiled cell starts only with this much of the budget left: compilation takes most of a minute


class TimeBox:
    "Counts steps; times those after `warmup` for at least `seconds` and `min_steps`, the device's queue drained at both ends."
    def __init__(self, device, warmup: int, seconds: float, min_steps: int):
        if warmup < 1: raise ValueError(f"warmup must be at least 1 step (the clock starts after one); got {warmup}")
        self.device, self.warmup, self.seconds, self.min_steps = device, warmup, seconds, min_steps
        self.steps, self.start, self.end = 0, None, None

    def synchronize(self):
        if self.device.type == "cuda": torch.cuda.synchronize(self.device)

    def tick(self) -> bool:
        "Count one finished step; True once the box is full."
        self.steps += 1
        if self.steps == self.warmup:
            self.synchronize(); self.start = time.perf_counter()
        elif self.steps - self.warmup >= self.min_steps and time.perf_counter() - self.start >= self.seconds:
            self.synchronize(); self.end = time.perf_counter()
            return True
        return False

    def steps_per_second(self) -> float:
        if self.end is None: raise RuntimeError(f"the time box did not close: {self.steps} steps of {self.warmup} warm-up and {self.min_steps} timed")
        return (self.steps - self.warmup) / (self.end - self.start)


def _stop_when_full(box):
    "A Lightning callback that ends training when `box` is full."
    import pytorch_lightning as pl
    class StopWhenFull(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if box.tick(): trainer.should_stop = True
    return StopWhenFull()


class OperatorCount(TorchDispatchMode):
    "Counts the aten operators dispatched inside the block (an operator that another calls inside its kernel is not counted again)."
    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "aten": self.counts[str(func)] += 1  # not the profiler's record_function markers
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int: return sum(self.counts.values())
    @property
    def host_reads(self) -> int: return self.counts["aten._local_scalar_dense.default"]


def _count_one_step(step: int):
    "A Lightning callback that counts the aten operators of one whole loop iteration, the `step`-th (from its batch's start to the next's)."
    import pytorch_lightning as pl
    class CountOneStep(pl.Callback):
        def __init__(self): self.calls, self.counter = 0, None
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.calls += 1
            if self.calls == step: self.counter = OperatorCount().__enter__()
            elif self.calls == step + 1: self.counter.__exit__(None, None, None)
    return CountOneStep()


class Bench:
    "One run: its settings, and the images of each shape it trains on."
    def __init__(self, args):
        self.args, self.device = args, torch.device(args.device)
        self.started, self.notes = time.perf_counter(), []

    def elapsed(self) -> float: return time.perf_counter() - self.started

    def failed(self, name: str, what: str, error: Exception):
        """Record a measurement that failed (an out-of-memory batch, a compilation error) and go on with the rest: a GPU's
        minutes are too few to lose the whole table to one cell. The smoke mode, which the tests run, raises instead."""
        if self.args.smoke: raise error
        message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        self.notes.append(f"{name}: {what} failed ({type(error).__name__}: {message})")
        print(json.dumps({"preset": name, "cell": what, "error": f"{type(error).__name__}: {message}"}), flush=True)
        if self.device.type == "cuda": torch.cuda.empty_cache()

    def over_budget(self) -> bool: return self.args.budget_seconds is not None and self.elapsed() > self.args.budget_seconds

    def model_of(self, name: str, settings: dict):
        "The preset's model, on the device, seeded."
        options = {**settings.get("model_options", {}), **(SMOKE_OPTIONS[name] if self.args.smoke else {})}
        event_shape, binary = event_shape_of(settings)
        torch.manual_seed(0)
        return model_factory(settings["model"])(event_shape, binary, **options).to(self.device)

    def images(self, settings: dict, batch_sizes) -> ImageTensorDataset:
        "Random 8-bit images of the preset's shape, binarised per batch where the preset's are; a whole number of every batch."
        event_shape, binary = event_shape_of(settings)
        count = math.lcm(*batch_sizes) * (2 if self.args.smoke else 4)
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (count, *event_shape), dtype=torch.uint8, generator=generator)
        return ImageTensorDataset(images, torch.zeros(count, dtype=torch.long), "dynamic" if binary else None)

    def box(self, compiled: bool = False) -> TimeBox:
        a = self.args
        return TimeBox(self.device, a.warmup + (2 if compiled else 0), a.cell_seconds, a.min_steps)

    def engine_images_per_second(self, name, settings, data, batch_size, learning_rate, precision="32-true", compile_model=False) -> float:
        "Training images/s through `DistributionTrainer`."
        model, box = self.model_of(name, settings), self.box(bool(compile_model))
        DistributionTrainer(model, data, batch_size=batch_size, max_epochs=-1, max_steps=box.warmup + self.args.max_steps,
                            validation_fraction=0., sample_grid=False, log_graph=False, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, accelerator=self.device.type, devices=1,
                            callbacks=[_stop_when_full(box)], seed=0, optimizer=settings.get("optimizer", "adam"),
                            learning_rate=learning_rate, weight_decay=settings.get("weight_decay", 0.), data_on_device=True,
                            precision=precision, compile_model=compile_model).train()
        return box.steps_per_second() * batch_size

    def bare_images_per_second(self, name, settings, data, batch_size, learning_rate, bf16=False) -> float:
        "Training images/s of a plain loop: the same model, loss, optimizer and batches, no Lightning."
        model, box = self.model_of(name, settings), self.box()
        data = ImageTensorDataset(data.images.to(self.device), data.labels.to(self.device), data.binarize)
        optimizer = OPTIMIZERS[settings.get("optimizer", "adam")](model.parameters(), lr=learning_rate, weight_decay=settings.get("weight_decay", 0.))
        model.train()
        for step in range(box.warmup + self.args.max_steps):
            images, _ = data.batch(torch.randint(0, len(data), (batch_size,), device=self.device))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = -model.log_prob(images)["log_prob"].mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if box.tick(): break
        return box.steps_per_second() * batch_size

    def sampling_seconds(self, name, settings) -> dict:
        "Seconds to draw 16 images with each sampler of the model (untrained weights: the work is the same)."
        model = self.model_of(name, settings)
        methods = ["fast", "naive"] if "method" in inspect.signature(model.sample).parameters else [None]
        # naive: a network pass per pixel; in smoke mode one PixelCNN is enough to run it (3,072 passes for CIFAR-10 take seconds)
        if self.args.smoke and name != "mnist-pixelcnn": methods = [method for method in methods if method != "naive"]
        seconds = {}
        with torch.no_grad():
            model.log_prob(self.images(settings, [2]).batch(torch.arange(2))[0].to(self.device))  # data-dependent initialisation (Glow)
            model.eval()
            for method in methods:
                draw = (lambda: model.sample([16])) if method is None else (lambda: model.sample([16], method=method))
                repeats = 1 if method == "naive" else 3  # naive: a full network pass per pixel, a second or more
                if method != "naive": draw()  # warm-up: cuDNN's choices, caches
                times = []
                for _ in range(repeats):
                    box = TimeBox(self.device, 1, 0., 0); box.tick(); draw(); box.tick()
                    times.append(box.end - box.start)
                seconds[method or "sample"] = round(statistics.median(times), 4)
        return seconds

    def engine_counts(self, name, settings, batch_size: int = 2, preset_engine: bool = False) -> tuple:
        """`(operators, host reads)` of one whole training step through `DistributionTrainer` (its third): with the bare loop's
        work, or with `preset_engine` the preset's gradient clipping, skipped updates and weight averaging as well."""
        model, data = self.model_of(name, settings), self.images(settings, [batch_size])
        counter, step = _count_one_step(3), 3
        engine = dict(optimizer=settings.get("optimizer", "adam"), learning_rate=settings.get("learning_rate", 1e-3), weight_decay=settings.get("weight_decay", 0.))
        if preset_engine: engine.update(gradient_clip_val=settings.get("gradient_clip_val"), skip_threshold=settings.get("skip_threshold"),
                                          loss_per_dimension=settings.get("loss_per_dimension", False), ema_decay=settings.get("ema_decay"))
        DistributionTrainer(model, data, batch_size=batch_size, max_epochs=-1, max_steps=step + 1, validation_fraction=0., sample_grid=False,
                            log_graph=False, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            accelerator=self.device.type, devices=1, callbacks=[counter], seed=0, data_on_device=True, precision="32-true", **engine).train()
        return counter.counter.total, counter.counter.host_reads

    def counts(self, name, settings, batch_size: int = 2) -> dict:
        "Parameters, parameter tensors, training FLOPs per image, and the aten operators of one training step (its second)."
        model = self.model_of(name, settings)
        data = self.images(settings, [batch_size])
        images = data.batch(torch.arange(batch_size))[0].to(self.device)
        optimizers = {"foreach": dict(foreach=True), "for_loop": dict(foreach=False), "fused": dict(fused=True)}
        optimizer_class = OPTIMIZERS[settings.get("optimizer", "adam")]
        def loss(): return -model.log_prob(images)["log_prob"].mean()
        loss().backward()  # the first step: data-dependent initialisation, lazily built modules
        model.zero_grad(set_to_none=True)
        with OperatorCount() as forward: value = loss()
        with OperatorCount() as backward: value.backward()
        row = dict(parameters=sum(p.numel() for p in model.parameters()), parameter_tensors=len(list(model.parameters())),
                   ops_forward=forward.total, ops_backward=backward.total, host_reads_forward_backward=forward.host_reads + backward.host_reads)
        for kind, options in optimizers.items():
            try: optimizer = optimizer_class(model.parameters(), lr=1e-4, **options)
            except (RuntimeError, ValueError, TypeError):  # e.g. Adamax has no fused implementation
                row[f"ops_optimizer_{kind}"] = row[f"optimizer_step_counter_reads_{kind}"] = None; continue
            optimizer.step()  # the first step creates the moments
            with OperatorCount() as step: optimizer.step()
            row[f"ops_optimizer_{kind}"] = step.total
            # reads of the optimizer's step counters, host tensors unless the optimizer is capturable: no device synchronisation
            row[f"optimizer_step_counter_reads_{kind}"] = step.host_reads
        # the optimizer's implementation on CUDA by default: foreach (a few multi-tensor kernels per group of tensors)
        row["ops_per_step"] = row["ops_forward"] + row["ops_backward"] + row["ops_optimizer_foreach"]
        model.zero_grad(set_to_none=True)
        flops = FlopCounterMode(display=False)
        with flops: loss().backward()
        row["gflop_per_image"] = round(flops.get_total_flops() / batch_size / 1e9, 4 if self.args.smoke else 3)
        # what a 16-image draw launches when every operator is its own kernel (eager, the default sampler); on CUDA the
        # PixelCNN replays a captured graph per pixel instead, which this count does not see
        model.eval()
        with torch.no_grad(), OperatorCount() as sampling: model.sample([16])
        model.train()
        row["sample_16_operators"], row["sample_16_host_reads"] = sampling.total, sampling.host_reads
        return row


def tflops(gflop_per_image, images_per_second):
    "TFLOP/s achieved, to 3 significant digits."
    return None if images_per_second is None else float(f"{gflop_per_image * images_per_second / 1e3:.3g}")


def ratio(a, b): return None if a is None or b is None else round(a / b, 3)


def measure(bench, name, settings, gpu, cell, function, *arguments, **options):
    "Run one timed cell (None if the budget is spent); print its JSON line."
    if bench.over_budget():
        bench.notes.append(f"{name}: {cell} not measured (the run's budget of {bench.args.budget_seconds:.0f} s was spent)")
        return None
    started = time.perf_counter()
    try: value = round(function(name, settings, *arguments, **options), 1)
    except Exception as error:
        bench.failed(name, cell, error)
        return None
    print(json.dumps({"preset": name, "cell": cell, "images_per_second": value, "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    return value


def run_preset(bench, name) -> dict:
    "Every eager cell of one preset: its row of the table."
    settings, gpu = preset_settings(name)
    batch, gpu_batch = SMOKE_BATCHES if bench.args.smoke else (settings.get("batch_size", 64), gpu["batch_size"])
    rate, gpu_rate = settings.get("learning_rate", 1e-3), gpu["learning_rate"]
    data = bench.images(settings, [batch, gpu_batch])
    row = dict(preset=name, model=settings["model"], event_shape=list(event_shape_of(settings)[0]), batch_size=batch, gpu_batch_size=gpu_batch,
               optimizer=settings.get("optimizer", "adam"))
    row.update(bench.counts(name, settings))
    print(json.dumps({"preset": name, "cell": "counts", **{k: v for k, v in row.items() if k.startswith(("ops", "param", "gflop", "host"))}}), flush=True)
    row["engine_batch"] = measure(bench, name, settings, gpu, "engine, preset batch, 32-bit", bench.engine_images_per_second, data, batch, rate)
    row["bare_batch"] = measure(bench, name, settings, gpu, "bare, preset batch, 32-bit", bench.bare_images_per_second, data, batch, rate)
    row["engine_gpu_batch"] = measure(bench, name, settings, gpu, "engine, GPU batch, 32-bit", bench.engine_images_per_second, data, gpu_batch, gpu_rate)
    row["bare_gpu_batch"] = measure(bench, name, settings, gpu, "bare, GPU batch, 32-bit", bench.bare_images_per_second, data, gpu_batch, gpu_rate)
    row["engine_gpu_batch_bf16"] = measure(bench, name, settings, gpu, "engine, GPU batch, bf16-mixed", bench.engine_images_per_second,
                                           data, gpu_batch, gpu_rate, precision="bf16-mixed")
    row["bare_gpu_batch_bf16"] = measure(bench, name, settings, gpu, "bare, GPU batch, bf16 autocast", bench.bare_images_per_second,
                                         data, gpu_batch, gpu_rate, bf16=True)
    if not bench.over_budget():
        try:
            row["sample_16_seconds"] = bench.sampling_seconds(name, settings)
            print(json.dumps({"preset": name, "cell": "sample 16", "seconds": row["sample_16_seconds"]}), flush=True)
        except Exception as error:
            row["sample_16_seconds"] = None
            bench.failed(name, "sampling", error)
    else:
        row["sample_16_seconds"] = None
        bench.notes.append(f"{name}: sampling not measured (the run's budget was spent)")
    row["engine_gpu_batch_compiled"] = None
    derive(row)
    return row


def run_compiled(bench, row):
    "The engine compiled, at the GPU batch."
    settings, gpu = preset_settings(row["preset"])
    data = bench.images(settings, [row["batch_size"], row["gpu_batch_size"]])
    row["compile_mode"] = bench.args.engine_compile
    budget = bench.args.budget_seconds
    if budget is not None and bench.elapsed() > budget - COMPILE_RESERVE_SECONDS:
        bench.notes.append(f"{row['preset']}: compiled engine not measured (less than {COMPILE_RESERVE_SECONDS} s of the run's {budget:.0f} s budget left)")
        return
    row["engine_gpu_batch_compiled"] = measure(bench, row["preset"], settings, gpu, f"engine, GPU batch, 32-bit, compiled ({bench.args.engine_compile})",
                                               bench.engine_images_per_second, data, row["gpu_batch_size"], gpu["learning_rate"],
                                               compile_model=True if bench.args.engine_compile == "default" else bench.args.engine_compile)
    derive(row)


def derive(row):
    "The ratios and TFLOP/s of a row's measured cells."
    row["engine_over_bare_batch"] = ratio(row["engine_batch"], row["bare_batch"])
    row["engine_over_bare_gpu_batch"] = ratio(row["engine_gpu_batch"], row["bare_gpu_batch"])
    row["tflops_engine_gpu_batch"] = tflops(row["gflop_per_image"], row["engine_gpu_batch"])
    row["tflops_bare_gpu_batch"] = tflops(row["gflop_per_image"], row["bare_gpu_batch"])
    row["engine_bf16_over_32"] = ratio(row["engine_gpu_batch_bf16"], row["engine_gpu_batch"])
    row["bare_bf16_over_32"] = ratio(row["bare_gpu_batch_bf16"], row["bare_gpu_batch"])
    row["engine_compiled_over_eager"] = ratio(row.get("engine_gpu_batch_compiled"), row["engine_gpu_batch"])


def _number(value, digits=0):
    if value is None: return "–"
    return f"{value:,.{digits}f}"


def _significant(value): return "–" if value is None else f"{value:.3g}"


def markdown(summary) -> str:
    "The table of a speed run."
    smoke = " (smoke mode: tiny models, a couple of steps; the numbers mean nothing)" if summary["smoke"] else ""
    lines = [f"# pygenbrix training and sampling speed{smoke}", "",
             f"{summary['device']}, torch {summary['torch']}, {summary['date']}, commit `{short_commit(summary['commit'])}`; "
             f"{format_seconds(summary['wall_seconds'])} in all. Command: `{summary['command']}`", "",
             "img/s: training images per second; B: the preset's batch, G: its GPU batch; engine: `DistributionTrainer`; bare: "
             "a plain PyTorch loop of the same model, loss, optimizer and batch. 32-bit allows TF32 on CUDA. Operators: aten "
             "operators of one training step (forward + backward + foreach optimizer step).", "",
             "| preset | parameters (tensors) | operators per step | GFLOP/img | B | engine img/s at B | bare img/s at B | engine/bare | "
             "G | engine img/s at G | bare img/s at G | engine/bare | TFLOP/s (engine, G) | bf16-mixed img/s (engine, G) | bf16/32 | "
             "compiled img/s (engine, G) | compiled/eager | 16 samples (s) | operators of a 16-image draw (host reads) |",
             "|" + "---|" * 19]
    for row in summary["rows"]:
        samples = ", ".join(f"{method} {seconds}" for method, seconds in (row["sample_16_seconds"] or {}).items()) or "–"
        lines.append(f"| {row['preset']} | {row['parameters']:,} ({row['parameter_tensors']}) | {row['ops_per_step']:,} | {row['gflop_per_image']} | "
                     f"{row['batch_size']} | {_number(row['engine_batch'])} | {_number(row['bare_batch'])} | {_number(row['engine_over_bare_batch'], 2)} | "
                     f"{row['gpu_batch_size']} | {_number(row['engine_gpu_batch'])} | {_number(row['bare_gpu_batch'])} | {_number(row['engine_over_bare_gpu_batch'], 2)} | "
                     f"{_significant(row['tflops_engine_gpu_batch'])} | {_number(row['engine_gpu_batch_bf16'])} | {_number(row['engine_bf16_over_32'], 2)} | "
                     f"{_number(row['engine_gpu_batch_compiled'])} | {_number(row['engine_compiled_over_eager'], 2)} | {samples} | "
                     f"{row['sample_16_operators']:,} ({row['sample_16_host_reads']}) |")
    lines += [""] + [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def count_markdown(rows) -> str:
    "The operator and FLOP counts alone."
    lines = ["Operators are aten operators of one training step at batch 2 (the count does not depend on the batch). Bare step: forward, "
             "backward and the optimizer's step, foreach (CUDA's default). Engine step: one whole iteration of `DistributionTrainer`'s loop "
             "(data, forward, backward, optimizer, callbacks) with the for-loop optimizer (the CPU's default; the bare step with it has "
             "forward + backward + for-loop operators); 'preset' adds the preset's gradient clipping, skipped updates and weight averaging. "
             "Host reads: `aten._local_scalar_dense`, a value read back to the host (a synchronisation on a GPU, except the optimizer's "
             "reads of its step counters, which are host tensors).", "",
             "| preset | parameters | parameter tensors | GFLOP/img (fwd+bwd) | forward ops | backward ops | optimizer ops: foreach (of which step-counter reads) / for-loop / fused | bare step ops (foreach) | host reads, forward + backward | engine step ops (host reads) | added by the engine: ops (host reads) | with the preset's clipping, skipping, averaging: engine step ops (host reads) | added: ops (host reads) | 16-image draw: ops (host reads) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['preset']} | {row['parameters']:,} | {row['parameter_tensors']} | {row['gflop_per_image']} | {row['ops_forward']:,} | "
                     f"{row['ops_backward']:,} | {row['ops_optimizer_foreach']:,} ({row['optimizer_step_counter_reads_foreach']:,}) / {row['ops_optimizer_for_loop']:,} / "
                     f"{_number(row['ops_optimizer_fused'])} | "
                     f"{row['ops_per_step']:,} | {row['host_reads_forward_backward']} | "
                     + " | ".join(f"{row[f'{kind}_ops_per_step']:,} ({row[f'{kind}_host_reads_per_step']:,}) | {row[f'{kind}_added_ops']:,} ({row[f'{kind}_added_host_reads']:,})"
                                  for kind in ("engine", "engine_preset"))
                     + f" | {row['sample_16_operators']:,} ({row['sample_16_host_reads']}) |")
    lines += ["", "The 16-image draw uses the model's default sampler, eagerly, every operator a kernel launch on a GPU: the PixelCNN's "
              "cached sampler runs the same operators at every pixel (on CUDA it captures them once as a CUDA graph and replays it, "
              "one launch per pixel); the other models draw all pixels of a stage at once, and the parallel CNN's whole draw becomes "
              "one CUDA graph from its second call with the same shapes."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny models, small batches, a couple of steps per cell (seconds on a CPU)")
    parser.add_argument("--count-only", action="store_true", help="only count operators, parameter tensors and FLOPs (no timing)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", default=",".join(PRESETS), help="comma-separated presets (default: all, cheapest first)")
    parser.add_argument("--compile", default=",".join(COMPILED_BY_DEFAULT), help="presets whose engine is also timed compiled ('all', or '' for none)")
    parser.add_argument("--engine-compile", default="default", help="the engine's compile_model: 'default' (True) or a torch.compile mode the engine takes, e.g. reduce-overhead")
    parser.add_argument("--cell-seconds", type=float, default=None, help="timed seconds per cell, after warm-up (default 1.5; smoke 0)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per cell (default 3; smoke 1; compiled cells 2 more)")
    parser.add_argument("--min-steps", type=int, default=None, help="timed steps per cell at least (default 3; smoke 2)")
    parser.add_argument("--max-steps", type=int, default=10_000, help="timed steps per cell at most")
    parser.add_argument("--budget-seconds", type=float, default=None, help="start no cell after this many seconds (default 270; smoke none)")
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads")
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent/"results", help="where the results files go")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    for name, full, smoke in (("cell_seconds", 1.5, 0.), ("warmup", 3, 1), ("min_steps", 3, 2), ("budget_seconds", 270., None)):
        if getattr(args, name) is None: setattr(args, name, smoke if args.smoke else full)
    presets = [name for name in args.only.split(",") if name]
    unknown = [name for name in presets if name not in PRESETS]
    if unknown: parser.error(f"unknown preset {', '.join(unknown)}; presets: {', '.join(PRESETS)}")
    compiled = [name for name in (presets if args.compile == "all" else args.compile.split(",")) if name in presets]
    if args.threads: torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning_fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    if args.device.startswith("cuda"):
        torch.set_float32_matmul_precision("high")  # TF32 matrix products: the 32-bit cells
        torch.backends.cudnn.benchmark = True
    bench = Bench(args)
    command = " ".join(["python", "bench/gpu_speed.py", *(sys.argv[1:] if argv is None else argv)])
    record = run_record("speed", describe_device(bench.device), command, time_boxed=True, smoke=args.smoke)
    print(json.dumps({key: record[key] for key in ("device", "torch", "commit", "smoke")}), flush=True)

    with validation(False):
        if args.count_only:
            rows = []
            for name in presets:
                settings, _ = preset_settings(name)
                row = {"preset": name, **bench.counts(name, settings)}
                row["engine_ops_per_step"], row["engine_host_reads_per_step"] = bench.engine_counts(name, settings)
                row["engine_preset_ops_per_step"], row["engine_preset_host_reads_per_step"] = bench.engine_counts(name, settings, preset_engine=True)
                # what the engine adds to the bare step with the same (for-loop) optimizer
                bare_ops = row["ops_forward"] + row["ops_backward"] + row["ops_optimizer_for_loop"]
                bare_reads = row["host_reads_forward_backward"] + row["optimizer_step_counter_reads_for_loop"]
                for kind in ("engine", "engine_preset"):
                    row[f"{kind}_added_ops"] = row[f"{kind}_ops_per_step"] - bare_ops
                    row[f"{kind}_added_host_reads"] = row[f"{kind}_host_reads_per_step"] - bare_reads
                rows.append(row)
                print(json.dumps(row), flush=True)
            summary = {**record, "kind": "operators", "time_boxed": False, "wall_seconds": round(bench.elapsed(), 1), "rows": rows, "notes": []}
            text = f"# Operators per training step\n\n{record['device']}, torch {record['torch']}; command `{command}`\n\n" + count_markdown(rows)
        else:
            rows = []
            for name in presets:
                try: rows.append(run_preset(bench, name))
                except Exception as error: bench.failed(name, "counting operators and FLOPs", error)
            if not args.smoke:
                for row in rows:
                    if row["preset"] in compiled: run_compiled(bench, row)  # a failure is a note, as in every timed cell
            for name in presets:
                if args.smoke: bench.notes.append(f"{name}: compiled engine not timed in smoke mode (compiling takes minutes on a CPU)")
                elif name not in compiled: bench.notes.append(f"{name}: compiled engine not timed (add it with --compile)")
            summary = {**record, "wall_seconds": round(bench.elapsed(), 1), "tf32": args.device.startswith("cuda"), "rows": rows, "notes": bench.notes}
            text = markdown(summary)
    summary["wall_seconds"] = round(bench.elapsed(), 1)
    print(text)
    if not args.no_write: print(f"written: {write_results(summary, text, args.output_dir)}", flush=True)
    return summary


if __name__ == "__main__":
    main()
