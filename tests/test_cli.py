"""The command line end to end in a temporary folder, on a seconds-long budget."""

import json
import subprocess
import sys

import pytest

from imagegen.cli import main


def run(*args: str) -> int:
    return main([str(a) for a in args])


def test_cli_end_to_end(tmp_path, capsys):
    data, runs, out = tmp_path / "digits", tmp_path / "runs" / "t", tmp_path / "out"
    assert run("data", "import", "builtin:digits", data) == 0
    assert "imported 1797 of 1797 inputs as 8x8x1 images" in capsys.readouterr().out
    assert run("data", "info", data) == 0
    assert "1797" in capsys.readouterr().out

    assert run("train", data, "--out", runs, "--steps", 4, "--preset", "unet-tiny", "--batch-size", 16) == 0
    msg = capsys.readouterr().out
    assert "done: 4 steps" in msg and (runs / "checkpoints" / "ckpt-00000004.safetensors").is_file()
    # resume extends the same run
    assert run("train", data, "--out", runs, "--resume", "--steps", 6) == 0
    assert "done: 6 steps" in capsys.readouterr().out

    assert run("generate", runs, "-n", 12, "--steps", 3, "--seed", 5, "--cfg", 1, "--out", out) == 0
    msg = capsys.readouterr().out
    assert "wrote 12 PNGs" in msg and "3 network evaluations per image" in msg  # dpmpp-2m: one per step
    assert len(list(out.glob("0*.png"))) == 12 and (out / "grid.png").is_file()

    assert run("features", "train-evaluator", data) == 0
    assert "held-out accuracy" in capsys.readouterr().out

    report_path = tmp_path / "report.json"
    assert run("evaluate", out, "--data", data, "--json", report_path) == 0
    printed = capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["n"] == 12 and report["fid"] > 0 and 0 <= report["confident_fraction"] <= 1
    assert "class_accuracy" in report and "fid" in printed.lower()
    for key in ("fid", "kid", "precision", "recall", "memorization", "cas", "class_accuracy"):
        assert isinstance(report[key], float), key
    assert len(report["fid_seeds"]) == 3 and report["fid_std"] >= 0  # 3 groups of 4 PNGs
    assert report_path.with_suffix(".png").is_file()
    # a figure written into the sample folder is not read back as a sample
    assert run("evaluate", out, "--data", data, "--figure", out / "evaluation.png") == 0
    assert run("evaluate", out, "--data", data, "--json", report_path) == 0
    assert json.loads(report_path.read_text())["n"] == 12

    # a run evaluated directly generates its own samples
    assert run("evaluate", runs, "--data", data, "-n", 10, "--steps", 2, "--json", tmp_path / "r2.json") == 0
    r2 = json.loads((tmp_path / "r2.json").read_text())
    assert r2["n"] == 30 and r2["seeds"] == 3 and r2["generation"]["n_per_seed"] == 10


def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys):
    assert run("train", tmp_path / "nothing", "--out", tmp_path / "r", "--steps", 1) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "imagegen data import" in err and "Traceback" not in err
    assert run("data", "import", "builtin:nope", tmp_path / "d") == 2
    assert "builtin:mnist5k" in capsys.readouterr().err
    assert run("generate", tmp_path / "missing-run", "--out", tmp_path / "o") == 2
    assert "no such run" in capsys.readouterr().err


def test_console_script_help_has_examples():
    r = subprocess.run([sys.executable, "-m", "imagegen.cli", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "examples:" in r.stdout and "--budget 10m" in r.stdout


def test_sampler_and_schedule_choices_match_the_samplers_module():
    from imagegen.cli import SAMPLER_CHOICES, SCHEDULE_CHOICES
    from imagegen.samplers import SAMPLERS, SCHEDULES

    assert set(SAMPLER_CHOICES) == set(SAMPLERS)
    assert SCHEDULE_CHOICES == ("auto", *SCHEDULES)
