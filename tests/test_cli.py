"""The `pygenbrix` command as a user runs it: the installed console script in its own process, on the bundled digits,
with tiny models and one or two short epochs. Each test covers one part of what the command promises: runs are never
lost or mixed, a run trains on, class-conditional models, bad input refused in one line before any work, the small
things (version, usage, file names, hparams), and the settings a preset names for a GPU."""
import hashlib, json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
COMMAND = shutil.which("pygenbrix") or str(Path(sys.executable).parent/"pygenbrix")
# the console script imports the pygenbrix of this checkout, whichever one is installed
ENVIRONMENT = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
               "OMP_NUM_THREADS": "1"}
BASELINE = ["--model", "bernoulli", "--no-progress-bar"]  # the pixel-marginal baseline: an epoch of the digits in a fraction of a second


def _default_ctrl_c():
    # A job started in the background by a shell without job control (as CI runners start theirs) inherits
    # Ctrl-C ignored, and Python then never turns SIGINT into KeyboardInterrupt: give the command the
    # terminal's default so that the Ctrl-C tests send what a user's keyboard sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def start(*argv, cwd):
    "Start the console script with `argv` in `cwd`, Ctrl-C handled as in a terminal; the running process."
    return subprocess.Popen([COMMAND, *map(str, argv)], cwd=cwd, env=ENVIRONMENT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_ctrl_c)

def pygenbrix(*argv, cwd, timeout=300) -> subprocess.CompletedProcess:
    "Run the console script with `argv` in `cwd`; its exit status, stdout and stderr."
    return subprocess.run([COMMAND, *map(str, argv)], cwd=cwd, env=ENVIRONMENT, capture_output=True, text=True, timeout=timeout)

def pygenbrix_all(commands, cwd, at_once=4) -> list:
    "Run many short commands, a few at a time (each spends most of its time importing torch); their results in order."
    results, running = [None]*len(commands), []
    for index, argv in enumerate(commands):
        running.append((index, start(*argv, cwd=cwd)))
        if len(running) == at_once or index == len(commands) - 1:
            for number, process in running:
                stdout, stderr = process.communicate(timeout=300)
                results[number] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            running = []
    return results

def ok(result) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result

def refused(result, *expected):
    "The command stopped with status 2 and one line on stderr that holds every text in `expected`."
    assert result.returncode == 2, f"{result.args}: status {result.returncode}\n{result.stdout[-1000:]}\n{result.stderr[-2000:]}"
    assert result.stderr.startswith("pygenbrix: error: ") and result.stderr.count("\n") == 1, result.stderr
    for text in expected: assert text in result.stderr, f"{text!r} not in {result.stderr!r}"

def read_json(path) -> dict: return json.loads(Path(path).read_text())
def sha256(path) -> str: return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# 1. Runs are never lost or mixed
def test_a_run_is_never_replaced_by_accident(tmp_path):
    run = tmp_path/"run"
    first = ok(pygenbrix("train", *BASELINE, "--epochs", "1", "--output-dir", run, cwd=tmp_path))
    assert "litlogger" not in first.stdout + first.stderr  # Lightning's advertisement for its cloud logger is not printed
    evaluated = ok(pygenbrix("evaluate", run, cwd=tmp_path))
    evaluation = read_json(run/"metrics-test.json")
    # the evaluation names the checkpoint it scored, and the message names the file
    assert evaluation["checkpoint"]["sha256"] == sha256(run/"model.ckpt")
    assert (evaluation["checkpoint"]["steps"], evaluation["checkpoint"]["epochs_trained"]) == (read_json(run/"metrics.json")["steps"], 1)
    assert str(run/"metrics-test.json") in evaluated.stdout
    checkpoint = sha256(run/"model.ckpt")

    a_file = tmp_path/"a-file"
    a_file.write_text("not a folder"); (tmp_path/"a-folder").mkdir()
    refusals = pygenbrix_all([["train", *BASELINE, "--epochs", "2", "--output-dir", run],
                              ["train", *BASELINE, "--output-dir", a_file],
                              ["evaluate", run, "--output", tmp_path/"a-folder"]], cwd=tmp_path)
    refused(refusals[0], f"{run} already holds a run", f"--resume {run}", "--overwrite")
    refused(refusals[1], f"--output-dir {a_file} is a file")
    refused(refusals[2], f"--output {tmp_path/'a-folder'} is a folder")
    assert sha256(run/"model.ckpt") == checkpoint and read_json(run/"metrics.json")["epochs_trained"] == 1

    replaced = ok(pygenbrix("train", *BASELINE, "--epochs", "2", "--overwrite", "--output-dir", run, cwd=tmp_path))
    assert all(name in replaced.stderr for name in ("--overwrite", "metrics-test.json", "model.ckpt")), replaced.stderr
    assert not (run/"metrics-test.json").exists()  # the old model's evaluation went with it
    assert read_json(run/"metrics.json")["epochs_trained"] == 2 and sha256(run/"model.ckpt") != checkpoint
    # an evaluation of another checkpoint is stale: evaluate does not write over it, and says so
    (run/"metrics-test.json").write_text(json.dumps(evaluation))
    refused(pygenbrix("evaluate", run, cwd=tmp_path), f"{run/'metrics-test.json'} holds an evaluation of another checkpoint", "stale")
    assert read_json(run/"metrics-test.json") == evaluation


# 2. Train a run on
def test_resume_trains_a_finished_run_on(tmp_path):
    run, straight = tmp_path/"run", tmp_path/"straight"
    pygenbrix_all([["train", *BASELINE, "--epochs", "3", "--output-dir", run],
                   ["train", *BASELINE, "--epochs", "4", "--output-dir", straight]], cwd=tmp_path, at_once=2)
    first_part = read_json(run/"metrics.json")
    clock_at_checkpoint = next(state["seconds"] for key, state in torch.load(run/"model.ckpt", weights_only=True)["callbacks"].items()
                               if "TrainingClock" in key)
    ok(pygenbrix("train", "--resume", run, "--epochs", "4", "--model", "bernoulli", "--dataset", "digits", "--no-progress-bar", cwd=tmp_path))
    resumed, uninterrupted = read_json(run/"metrics.json"), read_json(straight/"metrics.json")
    assert (resumed["epochs_trained"], resumed["steps"]) == (4, 4*first_part["steps"]/3) == (uninterrupted["epochs_trained"], uninterrupted["steps"])
    assert resumed["test"] == uninterrupted["test"]  # Lightning resumed the optimizer, the data order and the random draws exactly
    assert read_json(run/"run.json")["arguments"]["epochs"] == 4
    # the training time of the whole run, not of its last part
    assert resumed["train_seconds"] >= round(clock_at_checkpoint, 1) > 0
    # one TensorBoard run, with the settings beside it
    event_folders = {path.parent for path in run.rglob("events.out.tfevents.*")}
    assert event_folders == {run/"logs"} and len(list((run/"logs").glob("events.out.tfevents.*"))) == 2
    import yaml
    hparams = yaml.safe_load((run/"logs"/"hparams.yaml").read_text())
    assert (hparams["model"], hparams["epochs"], hparams["learning_rate"]) == ("bernoulli", 4, 0.05)

    changed, finished, both = pygenbrix_all([
        ["train", "--resume", run, "--epochs", "5", "--learning-rate", "0.1", "--batch-size", "32", "--model", "bernoulli"],
        ["train", "--resume", run],
        ["train", "--resume", run, "--overwrite"]], cwd=tmp_path)
    refused(changed, "another experiment", "learning_rate: 0.05 in the run, 0.1 given", "batch_size: 64 in the run, 32 given")
    assert "model:" not in changed.stderr  # restating the run's own model is no change
    refused(finished, "the run has trained 4 epochs", "--epochs N, N > 4")
    refused(both, "give one of them")
    assert read_json(run/"metrics.json") == resumed


# 3. Class-conditional models
def test_conditional_models(tmp_path):
    from pygenbrix.cli import load_model
    from pygenbrix.data import Digits, freeze_binarization
    from pygenbrix.metrics import LayerObjective, evaluate_nll
    pixelcnn_sizes, glow_sizes = tmp_path/"pixelcnn.yaml", tmp_path/"glow.yaml"
    pixelcnn_sizes.write_text("model: pixelcnn\nconditional: true\nmodel_options: {channels: 8, layers: 2}\n")
    glow_sizes.write_text("model: glow\nconditional: true\nmodel_options: {steps_per_level: 1, hidden_channels: 8}\n")
    quick = ["--epochs", "1", "--max-train-batches", "5", "--num-samples", "20", "--no-progress-bar"]
    pixelcnn, glow = tmp_path/"pixelcnn", tmp_path/"glow"
    for result in pygenbrix_all([["train", "--config", pixelcnn_sizes, *quick, "--output-dir", pixelcnn],
                                 ["train", "--config", glow_sizes, *quick, "--max-eval-batches", "1", "--output-dir", glow]], cwd=tmp_path, at_once=2):
        ok(result)
    assert read_json(pixelcnn/"run.json")["num_classes"] == 10 and read_json(pixelcnn/"metrics.json")["conditional"]

    evaluated = ok(pygenbrix("evaluate", pixelcnn, cwd=tmp_path))
    assert "given its label" in evaluated.stdout
    # the evaluation is the NLL of each test image given its label, computed here independently
    layer = load_model(pixelcnn)
    test_set = freeze_binarization(Digits("test", binarize="dynamic"), 0)
    given_labels = evaluate_nll(layer, test_set, objective=LayerObjective(reverse_inputs=True, num_classes=10))
    assert read_json(pixelcnn/"metrics-test.json")["metrics"]["nats"] == pytest.approx(given_labels["nats"], abs=1e-6)
    images, labels = test_set.tensors
    wrong_labels = torch.utils.data.TensorDataset(images, (labels + 1) % 10)
    assert evaluate_nll(layer, wrong_labels, objective=LayerObjective(reverse_inputs=True, num_classes=10))["nats"] != given_labels["nats"]

    # a few batches leave the label's weights near their initial zeros; perturbed, each label draws other images
    checkpoint = torch.load(pixelcnn/"model.ckpt", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    for key, weights in checkpoint["state_dict"].items():
        if weights.is_floating_point(): weights += 0.3*torch.randn(weights.shape, generator=generator)
    torch.save(checkpoint, pixelcnn/"model.ckpt")
    threes, threes_again, fives, glow_nines, unknown_label, unconditional, no_condition = pygenbrix_all([
        ["sample", pixelcnn, "--label", "3", "--num-samples", "4", "--output", "threes.png"],
        ["sample", pixelcnn, "--label", "3", "--num-samples", "4", "--output", "threes-again.png"],
        ["sample", pixelcnn, "--label", "5", "--num-samples", "4", "--output", "fives.png"],
        ["sample", glow, "--label", "9", "--num-samples", "4"],
        ["sample", pixelcnn, "--label", "10"],
        ["train", "--model", "vae", "--conditional"],
        ["sample", tmp_path/"glow", "--label", "-1"]], cwd=tmp_path)
    for result in (threes, threes_again, fives, glow_nines): ok(result)
    assert (tmp_path/"threes.png").read_bytes() == (tmp_path/"threes-again.png").read_bytes() != (tmp_path/"fives.png").read_bytes()
    # the command draws from the layer given the one-hot label 3, as this does
    import pytorch_lightning as pl
    from pygenbrix.cli import _write_samples
    layer = load_model(pixelcnn)
    pl.seed_everything(0, verbose=False)
    _write_samples(layer, tmp_path/"threes-here.png", 4, 1.0, num_classes=10, label=3)
    assert (tmp_path/"threes-here.png").read_bytes() == (tmp_path/"threes.png").read_bytes()
    assert (glow/"samples-temperature-1-label9.png").exists() and (glow/"samples.png").exists()
    refused(unknown_label, "--label 10", "classes 0 to 9")
    refused(unconditional, "--conditional: model 'vae' takes no condition; class-conditional models: pixelcnn, glow")
    refused(no_condition, "argument --label: expected a non-negative int; got '-1'")


def test_conditional_presets_resolve_and_build():
    from pygenbrix.cli import model_factory, train_settings
    for name, model in [("mnist-pixelcnn-conditional", "pixelcnn"), ("mnist-glow-conditional", "glow")]:
        settings = train_settings({"preset": name})
        assert (settings["model"], settings["conditional"]) == (model, True)
        shape = [1, 32, 32] if settings["pad_to_32"] else [1, 28, 28]
        layer = model_factory(model, conditional=True)(torch.Size(shape), settings["binarize"] != "none", num_classes=10, **settings["model_options"])
        assert layer.params_size(shape) == 10


# 4. Bad input: one clear line, before any work
def test_config_values_are_checked_as_flags_are(tmp_path):
    cases = {
        "epochs: -1": "epochs: expected a positive int; got -1",
        "epochs: two": "epochs: expected a positive int; got 'two'",
        "epochs: 1.5": "epochs: expected a positive int; got 1.5",
        "epochs: 0": "epochs: expected a positive int; got 0",
        "batch_size: 0": "batch_size: expected a positive int; got 0",
        "learning_rate: fast": "learning_rate: expected a positive float; got 'fast'",
        'batch_size: "sixty-four"': "batch_size: expected a positive int; got 'sixty-four'",
        "schedule: cosin": "schedule: expected one of constant, robbins_monro, warmup, cosine; got 'cosin'",
        "optimizer: sgd": "optimizer: expected one of adam, adamw, adamax; got 'sgd'",
        'model_options: {channels: "wide"}': "model_options: channels: expected a positive int or a list of them; got 'wide'",
        "epoch: 3": "unknown setting epoch; a config takes",
    }
    commands = []
    for number, text in enumerate(cases):
        (tmp_path/f"{number}.yaml").write_text(text + "\n")
        commands.append(["train", "--config", f"{number}.yaml", "--output-dir", f"run-{number}"])
    commands += [["train", "--epochs", "-1"], ["train", "--warmup-steps", "-5"]]
    results = pygenbrix_all(commands, cwd=tmp_path)
    for (number, text), result in zip(enumerate(cases), results):
        refused(result, f"config file {number}.yaml: {cases[text]}")
        assert not (tmp_path/f"run-{number}").exists()  # no half-made run folder
    refused(results[-2], "argument --epochs: expected a positive int; got '-1'")
    refused(results[-1], "argument --warmup-steps: expected a non-negative int; got '-5'")


def test_corrupt_files_and_inapplicable_options(tmp_path):
    run = tmp_path/"run"
    ok(pygenbrix("train", *BASELINE, "--epochs", "1", "--output-dir", run, cwd=tmp_path))
    truncated, random_bytes, broken_record = tmp_path/"truncated", tmp_path/"random-bytes", tmp_path/"broken-record"
    for copy in (truncated, random_bytes, broken_record): shutil.copytree(run, copy)
    (truncated/"model.ckpt").write_bytes((run/"model.ckpt").read_bytes()[:300])
    (random_bytes/"model.ckpt").write_bytes(torch.randint(0, 256, (5000,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy().tobytes())
    (broken_record/"run.json").write_text((run/"run.json").read_text()[:40])
    results = pygenbrix_all([["evaluate", truncated], ["sample", truncated], ["train", "--resume", truncated, "--epochs", "2"],
                             ["evaluate", random_bytes], ["evaluate", broken_record], ["train", "--resume", broken_record, "--epochs", "2"],
                             ["train", "--model", "pixelcnn", "--importance-samples", "10", "--output-dir", "pixelcnn"],
                             ["evaluate", run, "--importance-samples", "10"],
                             ["train", "--dataset", "mnist", "--data-root", tmp_path/"no-data", "--output-dir", "mnist"]], cwd=tmp_path)
    for result, folder in zip(results[:4], [truncated]*3 + [random_bytes]):
        refused(result, f"{folder/'model.ckpt'} is not a readable checkpoint: the file is truncated or corrupt")
        assert "weights_only=False" not in result.stderr  # torch's advice to unpickle anything is never passed on
    for result in results[4:6]: refused(result, f"{broken_record/'run.json'} is corrupt")
    refused(results[6], "--importance-samples needs a latent-variable model (vae, vdvae)")
    assert not (tmp_path/"pixelcnn").exists()  # refused before training, not after
    refused(results[7], "--importance-samples needs a latent-variable model")
    refused(results[8], "Pass --download to fetch them", "--data-root")
    assert "download=True" not in results[8].stderr and "root=" not in results[8].stderr


def test_ctrl_c(tmp_path):
    "Ctrl-C during training says how to continue the run; during evaluate, that nothing was written; neither prints a traceback."
    training = start("train", "--model", "vae", "--epochs", "1000", "--max-train-batches", "2", "--no-progress-bar", "--output-dir", "run", cwd=tmp_path)
    deadline = time.time() + 120
    while not (tmp_path/"run"/"model.ckpt").exists() and time.time() < deadline and training.poll() is None: time.sleep(0.05)
    assert training.poll() is None and (tmp_path/"run"/"model.ckpt").exists(), "the run must be training, past its first epoch"
    training.send_signal(signal.SIGINT)
    stdout, stderr = training.communicate(timeout=120)
    assert training.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == f"pygenbrix: interrupted; continue the run from its last finished epoch with: pygenbrix train --resume run"
    ok(pygenbrix("train", "--resume", "run", "--epochs", str(torch.load(tmp_path/"run"/"model.ckpt", weights_only=True)["epoch"] + 2),
                 "--no-progress-bar", cwd=tmp_path))

    evaluating = start("evaluate", "run", "--split", "train", "--importance-samples", "1000", cwd=tmp_path)
    assert evaluating.stdout.readline().startswith("evaluating ")  # the model is loaded and scoring has begun
    evaluating.send_signal(signal.SIGINT)
    stdout, stderr = evaluating.communicate(timeout=120)
    assert (evaluating.returncode, stderr) == (130, "pygenbrix: interrupted; no evaluation was written\n")
    assert not (tmp_path/"run"/"metrics-train-k1000.json").exists()


# 5. Small things a user notices
def test_version_usage_help_and_names(tmp_path):
    from pygenbrix import __version__
    version, bare, help_text = pygenbrix_all([["--version"], [], ["train", "--help"]], cwd=tmp_path)
    assert ok(version).stdout == f"pygenbrix {__version__}\n"
    assert ok(bare).stdout.startswith("usage: pygenbrix") and "train" in bare.stdout and bare.stderr == ""
    flat = " ".join(ok(help_text).stdout.split())
    assert "depend on the number of workers too" in flat  # --num-workers changes the draws, and says so
    assert "bernoulli 0.05" in flat  # the baseline's own learning rate
    assert "gpu_batch_size and gpu_learning_rate" in flat and "--resume" in flat and "--overwrite" in flat

    run = tmp_path/"run"
    ok(pygenbrix("train", "--model", "bernoulli", "--epochs", "1", "--no-progress-bar", "--output-dir", run, cwd=tmp_path))
    assert read_json(run/"run.json")["arguments"]["learning_rate"] == 0.05
    test, train, seeded = pygenbrix_all([["evaluate", run], ["evaluate", run, "--split", "train", "--max-examples", "50"],
                                          ["evaluate", run, "--seed", "1"]], cwd=tmp_path, at_once=3)
    for result, name in [(test, "metrics-test.json"), (train, "metrics-train-first50.json"), (seeded, "metrics-test-seed1.json")]:
        assert str(run/name) in ok(result).stdout
        assert read_json(run/name)["output"] == str(run/name)
    assert read_json(run/"metrics-train-first50.json")["num_examples"] == 50 and read_json(run/"metrics-test.json")["num_examples"] == 359

    # what --help promises of workers: each draws its own random numbers, so a run is repeated with the same seed and workers
    for result in pygenbrix_all([["train", *BASELINE, "--epochs", "1", "--num-workers", "2", "--output-dir", folder] for folder in ("workers", "workers-again")],
                                cwd=tmp_path, at_once=2): ok(result)
    assert read_json(tmp_path/"workers"/"metrics.json")["test"] == read_json(tmp_path/"workers-again"/"metrics.json")["test"]


# Presets name a GPU batch size and learning rate (settings resolution; no GPU needed)
def test_gpu_settings_of_presets():
    from pygenbrix.cli import preset_names, read_preset, train_settings
    for name in preset_names():
        preset = read_preset(name)
        assert preset["gpu_batch_size"] > preset["batch_size"] and preset["gpu_learning_rate"] >= preset["learning_rate"], name
        on_gpu, on_cpu = train_settings({"preset": name, "accelerator": "gpu"}), train_settings({"preset": name, "accelerator": "cpu"})
        assert (on_gpu["batch_size"], on_gpu["learning_rate"]) == (preset["gpu_batch_size"], preset["gpu_learning_rate"])
        assert (on_cpu["batch_size"], on_cpu["learning_rate"]) == (preset["batch_size"], preset["learning_rate"])
    given = train_settings({"preset": "mnist-vae", "accelerator": "gpu", "batch_size": 100})
    assert (given["batch_size"], given["learning_rate"]) == (100, 0.002)  # a value given on the command line wins
    given = train_settings({"preset": "mnist-vae", "accelerator": "gpu", "learning_rate": 0.0003})
    assert (given["batch_size"], given["learning_rate"]) == (1024, 0.0003)
    assert train_settings({"model": "bernoulli"})["learning_rate"] == 0.05 and train_settings({})["learning_rate"] == 0.001
