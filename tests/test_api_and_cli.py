"""The CLI is a thin layer: each verb through the API and through the CLI gives the same result,
config files take overrides, and bad settings are one-line errors naming the fix."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from imagegen.checkpoint import latest_checkpoint, load_checkpoint
from imagegen.cli import main
from imagegen.config import RunConfig
from imagegen.errors import ImagegenError


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(latest_checkpoint(run)).model


def test_train_through_the_api_and_the_cli_gives_the_same_weights(digits_data, tmp_path):
    import imagegen

    cfg_file = tmp_path / "tiny.toml"
    tiny_config(digits_data, steps=3).save(cfg_file)
    imagegen.train(digits_data, tmp_path / "api", config=cfg_file, steps=5, lr=1e-3, progress=False)
    assert main(["train", str(digits_data), "--out", str(tmp_path / "cli"), "--config", str(cfg_file),
                 "--steps", "5", "--lr", "1e-3"]) == 0
    api, cli = _weights(tmp_path / "api"), _weights(tmp_path / "cli")
    assert api.keys() == cli.keys() and all(torch.equal(api[k], cli[k]) for k in api)
    stored = RunConfig.load(tmp_path / "cli" / "config.toml")
    assert (stored.train.steps, stored.train.lr, stored.train.budget_seconds) == (5, 1e-3, 0.0)  # overrides applied
    assert stored.model.preset == "unet-tiny"  # the rest from the file


def test_generate_and_evaluate_through_the_api_and_the_cli_agree(tiny_run, digits_data, tmp_path):
    import imagegen
    from imagegen.evaluation import evaluate
    from imagegen.generate import generate_to_folder

    api_imgs = imagegen.load(tiny_run, device="cpu").generate(n=12, seed=5, steps=4, sampler="heun", churn=5.0)
    assert main(["generate", str(tiny_run), "-n", "12", "--seed", "5", "--steps", "4", "--sampler", "heun",
                 "--churn", "5", "--out", str(tmp_path / "cli")]) == 0
    cli_imgs = np.stack([np.asarray(Image.open(tmp_path / "cli" / f"{5 + i:06d}.png")) for i in range(12)])
    assert np.array_equal(api_imgs[..., 0], cli_imgs)
    assert Image.open(tmp_path / "cli" / "000007.png").text["churn"] == "5.0"
    # a stochastic sampler still follows the seed rule: an image does not depend on its batch
    alone = imagegen.load(tiny_run).generate(n=1, seed=7, class_=2, steps=4, sampler="heun", churn=5.0)
    assert np.array_equal(alone[0], api_imgs[2])
    generate_to_folder(imagegen.load(tiny_run), tmp_path / "api", 12, 5, steps=4)

    report = evaluate(tiny_run, digits_data, n=20, seeds=2, steps=3, progress=False)
    assert main(["evaluate", str(tiny_run), "--data", str(digits_data), "-n", "20", "--seeds", "2", "--steps", "3",
                 "--json", str(tmp_path / "cli.json")]) == 0
    cli = json.loads((tmp_path / "cli.json").read_text())
    assert cli["fid_seeds"] == pytest.approx(report["fid_seeds"], rel=1e-9)
    assert (tmp_path / "cli.png").is_file()  # the figure beside the JSON: the API's default path


def test_a_resumed_run_refuses_overrides_that_would_change_it(tiny_run, digits_data, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with pytest.raises(ImagegenError, match=r"train.lr = 0.01 conflicts with the resumed run .*lr = 0.002.*another --out"):
        __import__("imagegen").train(digits_data, run, resume=True, steps=40, lr=0.01, progress=False)
    assert main(["train", str(digits_data), "--out", str(run), "--resume", "--steps", "40", "--preset", "unet-28"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model.preset = 'unet-28' conflicts with the resumed run")
    assert load_checkpoint(latest_checkpoint(run)).step == 30  # nothing was trained or written
    # the limits may change: that is how a run is extended
    r = __import__("imagegen").train(digits_data, run, resume=True, steps=32, progress=False)
    assert r["step"] == 32


@pytest.mark.parametrize("argv,message", [
    (["--device", "cuda"], "error: --device cuda: this PyTorch sees no CUDA GPU"),
    (["--device", "tpu"], "error: --device 'tpu' is not a device; choose one of: auto, cpu, cuda, cuda:N"),
    (["--precision", "fp8"], "invalid choice: 'fp8'"),
], ids=["cuda", "unknown-device", "precision"])
def test_bad_device_settings_are_one_line_errors(digits_data, tmp_path, capsys, argv, message):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) if "fp8" in argv else contextlib.nullcontext():
        code = main(["train", str(digits_data), "--out", str(tmp_path / "r"), "--steps", "1", "--preset", "unet-tiny",
                     *argv])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_a_config_file_with_unknown_keys_or_settings_is_refused(digits_data, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nbatchsize = 3\n")
    assert main(["train", str(digits_data), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key(s) batchsize; known keys: budget_seconds" in err[0]
    with pytest.raises(ImagegenError, match="unknown training setting.*learning_rate.*known: budget, steps"):
        __import__("imagegen").train(digits_data, tmp_path / "r2", steps=1, learning_rate=1.0)



def test_data_import_and_train_evaluator_through_the_api_and_the_cli_agree(tmp_path):
    import imagegen
    from imagegen.data import load_dataset
    from imagegen.features import evaluator_path, train_evaluator_for

    imagegen.import_images("builtin:digits", tmp_path / "api", near_bits=-1, progress=False)
    assert main(["data", "import", "builtin:digits", str(tmp_path / "cli"), "--near-bits", "-1"]) == 0
    api, cli = load_dataset(tmp_path / "api"), load_dataset(tmp_path / "cli")
    assert api.checksum == cli.checksum and len(api) == len(cli) == 1797
    train_evaluator_for(tmp_path / "api", "mlp", seed=3, epochs=2, progress=False)
    assert main(["features", "train-evaluator", str(tmp_path / "cli"), "--seed", "3", "--epochs", "2"]) == 0
    a, b = evaluator_path(tmp_path / "api"), evaluator_path(tmp_path / "cli")
    assert a.read_bytes() == b.read_bytes()
