"""Interrupted training loses nothing: SIGKILL mid-run, `--resume`, bit-identical result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dotrec.models import MODELS

TRAINERS = {
    "mf": ["--embedding-dim", "32", "--epochs", "60", "--learning-rate", "0.01"],
    "ials": [
        "--embedding-dim",
        "32",
        "--epochs",
        "30",
        "--regularization",
        "0.01",
        "--unobserved-weight",
        "0.1",
    ],
}
TRIALS = 3
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}


def train_cmd(model: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from dotrec.cli import main; main()",
        "train",
        model,
        "--dataset",
        "synthetic",
        "--threads",
        "1",
        "--seed",
        "3",
        "--protocol",
        "none",
        "--checkpoint-every",
        "1",
        "--out",
        str(out),
        *TRAINERS[model],
        *extra,
    ]


def arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path / "arrays.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def reference_run(model: str, folder: Path) -> dict[str, np.ndarray]:
    """The uninterrupted run's arrays."""
    subprocess.run(
        train_cmd(model, folder / "ref"), check=True, capture_output=True, env=ENV, timeout=600
    )
    return arrays(folder / "ref")


def kill_and_resume(model: str, folder: Path, trial: int) -> dict[str, np.ndarray]:
    """Start a run, SIGKILL it after its ``trial + 1``-th checkpoint, resume it; its arrays.

    Each trial kills at a different point: after the 1st, 2nd, 3rd ... checkpoint write.
    """
    out = folder / f"run{trial}"
    ckpt = out.with_name(out.name + ".ckpt")
    proc = subprocess.Popen(
        train_cmd(model, out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    seen = 0
    last = None
    while seen <= trial and time.monotonic() < deadline and proc.poll() is None:
        try:  # the checkpoint directory is replaced atomically: it can vanish between calls
            stamp: int | None = (ckpt / "model.json").stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != last:
            seen, last = seen + 1, stamp
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.json").exists(), "the run finished before it was killed"
    assert ckpt.exists()
    r = subprocess.run(
        train_cmd(model, out, "--resume"), capture_output=True, text=True, env=ENV, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout
    assert not ckpt.exists()  # the checkpoint is removed once the final model is saved
    return arrays(out)


def identical(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> bool:
    """Same array names, and every array equal bit for bit."""
    return got.keys() == expected.keys() and all(
        got[k].dtype == expected[k].dtype
        and got[k].shape == expected[k].shape
        and got[k].tobytes() == expected[k].tobytes()
        for k in expected
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(TRAINERS))
def test_sigkill_then_resume_is_bit_identical(model: str, tmp_path: Path) -> None:
    if model not in MODELS:
        pytest.fail(f"model {model!r} is not registered")
    expected = reference_run(model, tmp_path)
    for trial in range(TRIALS):
        got = kill_and_resume(model, tmp_path, trial)
        assert got.keys() == expected.keys()
        for k in expected:
            np.testing.assert_array_equal(
                got[k], expected[k], err_msg=f"{model} trial {trial}: {k}"
            )
        assert identical(got, expected)


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    out = tmp_path / "m"
    cmd = train_cmd("mf", out)
    cmd[cmd.index("60")] = "3"
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=300)
    # make a stale checkpoint by hand: copy the final model and ask for a different run
    import shutil

    shutil.copytree(out, out.with_name("m.ckpt"))
    cmd2 = train_cmd("mf", out, "--resume", "--learning-rate", "0.02")
    r = subprocess.run(cmd2, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "checkpoint is for" in r.stderr


def test_resume_recovers_a_checkpoint_left_aside(tmp_path: Path) -> None:
    """Where no atomic exchange exists, a crash between the two renames of a checkpoint
    replacement leaves the old checkpoint renamed aside; `--resume` puts it back and uses it."""
    import shutil

    out = tmp_path / "m"
    cmd = train_cmd("mf", out)
    cmd[cmd.index("60")] = "3"
    subprocess.run(cmd, check=True, capture_output=True, env=ENV, timeout=300)
    shutil.copytree(out, tmp_path / ".m.ckpt.old-4242")
    r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming mf" in r.stdout and "at epoch 3" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
