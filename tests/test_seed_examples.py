"""The seed example scripts in examples/ reproduce their seeds' numbers.

examples/ is not a package, so each script is loaded from its file path. Each is also run once
as a subprocess, the way a reader runs it, to keep its `main()` working.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def load_example(name: str):
    """Import examples/<name>.py as a module named after its file."""
    module_name = f"_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    spec.loader.exec_module(module)
    return module


def run_example(name: str) -> str:
    """Run examples/<name>.py as a script from the repository root; returns its stdout."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# ---------------------------------------------------------------- seed 000, worked example


@pytest.fixture(scope="module")
def worked():
    return load_example("seed000_worked_example")


def test_worked_example_gives_the_seeds_0_984(worked):
    hidden, outputs = worked.run_rnnkit()
    assert round(outputs[-1], 3) == 0.984
    assert round(hidden[0], 4) == 0.4621  # tanh(0.5)
    # tanh(1.0 + 0.4621...) = 0.89806..., which rounds to 0.8981
    assert hidden[1] == pytest.approx(0.8980630114608957, abs=1e-12)


def test_worked_example_matches_the_hand_formula(worked):
    kit_hidden, kit_outputs = worked.run_rnnkit()
    hand_hidden, hand_outputs = worked.run_by_hand()
    np.testing.assert_allclose(kit_hidden, hand_hidden, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kit_outputs, hand_outputs, rtol=0, atol=1e-12)


def test_worked_example_script_runs():
    stdout = run_example("seed000_worked_example")
    assert "0.984" in stdout
    assert "0.4621171573" in stdout


# ---------------------------------------------------------------- seed 000, next number


@pytest.fixture(scope="module")
def next_number():
    return load_example("seed000_next_number")


@pytest.fixture(scope="module")
def reference_model(next_number):
    return next_number.train(seed=0, backend="reference")


def test_next_number_predicts_5_after_2_3_4(next_number, reference_model):
    assert next_number.predict(reference_model, [2, 3, 4]) == pytest.approx(5.0, abs=0.3)


@pytest.mark.parametrize("seed", [1, 2])
def test_next_number_holds_for_other_seeds(next_number, seed):
    model = next_number.train(seed=seed, backend="reference")
    assert next_number.predict(model, [2, 3, 4]) == pytest.approx(5.0, abs=0.3)


def test_next_number_native_backend_trains_to_the_same_model(next_number, reference_model):
    # Same seed, same initial weights; the backends differ only in float32 rounding, which over
    # 300 Adam steps moves this prediction by about 1e-6 (at most 1.4e-6 over seeds 0-14), so
    # 1e-4 leaves a wide margin without switching to float64.
    native = next_number.train(seed=0, backend="native")
    expected = next_number.predict(reference_model, [2, 3, 4])
    assert next_number.predict(native, [2, 3, 4]) == pytest.approx(expected, abs=1e-4)


def test_next_number_training_is_deterministic(next_number, reference_model):
    rng_before = torch.get_rng_state()
    again = next_number.train(seed=0, backend="reference")
    assert next_number.predict(again, [2, 3, 4]) == next_number.predict(reference_model, [2, 3, 4])
    # Seeding is private to train(): the caller's global generator is left as it was.
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_next_number_script_runs():
    stdout = run_example("seed000_next_number")
    assert "Input: [2, 3, 4], Predicted Next Number: " in stdout
    line = next(ln for ln in stdout.splitlines() if ln.startswith("Input: [2, 3, 4]"))
    assert float(line.rsplit(":", 1)[1]) == pytest.approx(5.0, abs=0.3)


# ---------------------------------------------------------------- seed 003, BPTT

# rnn_backward's output as seed 003 prints it for np.random.seed(1).
SEED_DX = np.array(
    [
        [[6.07961714e-02, 6.51523342e-02, 1.35284158e-02, -4.17389120e-01]],
        [[-1.87655227e-01, 1.88161638e-01, 2.76636979e-02, 5.88910236e-01]],
        [[-2.10309856e-01, 1.17512701e-01, -1.81722854e-05, 1.33762936e00]],
    ]
)
SEED_DS0 = np.array([[-0.04446273], [-0.48089235], [-0.20806299], [0.05651028], [0.24527145]])
SEED_DU = np.array(
    [
        [-7.75341202e-02, 1.14056089e-03, -1.39468435e-01],
        [-3.76126305e-01, -2.71092586e-01, -7.68534819e-01],
        [-2.27890773e-01, -4.52402940e-01, -5.62591790e-02],
        [3.67591208e-02, 1.45958528e-01, 1.47219164e-02],
        [-1.16043009e00, -8.51763028e-01, -1.44090680e00],
    ]
)
SEED_DW = np.array(
    [
        [0.04560171, 0.04695379, 0.0257273, -0.02726464, 0.05504417],
        [0.37031535, 0.3703334, 0.38913814, -0.39608747, 0.36938758],
        [0.21223499, 0.3431846, 0.22255773, -0.35298064, 0.21136843],
        [-0.06210387, -0.06084794, -0.06470341, 0.06497274, -0.03480747],
        [0.78119033, 0.74650186, 0.34013264, -0.31155225, 0.6784628],
    ]
)
SEED_DBA = np.array([[0.02851001], [0.39449393], [0.35633039], [-0.06492795], [0.33991813]])

# Printed to 8 decimals: rounding leaves up to 5e-9 absolute error.
FIXED_POINT = {"rtol": 5e-8, "atol": 5e-9}
# Printed to 9 significant digits: rounding leaves up to 5e-9 relative error.
SCIENTIFIC = {"rtol": 5e-8, "atol": 0.0}

SEED_GRADIENTS = {
    "dx": (SEED_DX, SCIENTIFIC),
    "ds0": (SEED_DS0, FIXED_POINT),
    "dU": (SEED_DU, SCIENTIFIC),
    "dW": (SEED_DW, FIXED_POINT),
    "dba": (SEED_DBA, FIXED_POINT),
}


@pytest.fixture(scope="module")
def bptt():
    return load_example("seed003_bptt")


@pytest.fixture(scope="module")
def seed_arrays(bptt):
    return bptt.seed_arrays()


@pytest.fixture(scope="module")
def rnnkit_gradients(bptt, seed_arrays):
    return bptt.rnnkit_gradients(seed_arrays)


@pytest.mark.parametrize("name", list(SEED_GRADIENTS))
def test_bptt_matches_the_seeds_printed_gradients(rnnkit_gradients, name):
    expected, tolerance = SEED_GRADIENTS[name]
    got = rnnkit_gradients[name]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **tolerance, err_msg=name)


@pytest.mark.parametrize("name", list(SEED_GRADIENTS))
def test_bptt_matches_the_numpy_reference_backward(bptt, seed_arrays, rnnkit_gradients, name):
    reference = bptt.numpy_gradients(seed_arrays)
    np.testing.assert_allclose(rnnkit_gradients[name], reference[name], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["dV", "dby", "dx", "ds0", "dU", "dW", "dba"])
def test_output_layer_gradients_by_hand_match_rnnkit(bptt, seed_arrays, name):
    """The softmax/cross-entropy gradients for V and by, written by hand in numpy, and the BPTT
    they feed, equal rnnkit's under a Linear head and F.cross_entropy."""
    kit = bptt.rnnkit_output_gradients(seed_arrays)
    ref = bptt.numpy_output_gradients(seed_arrays)
    assert kit[name].shape == ref[name].shape
    np.testing.assert_allclose(kit[name], ref[name], rtol=0, atol=1e-12)
    assert np.isclose(kit["loss"], bptt.numpy_output_loss(seed_arrays), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["V", "by", "U", "W", "ba", "s0"])
def test_output_layer_gradients_by_hand_match_finite_differences(bptt, seed_arrays, name):
    """The hand-written numpy gradients against central differences of the numpy loss: the
    check that does not rest on rnnkit or torch at all."""
    hand = bptt.numpy_output_gradients(seed_arrays)["d" + name]
    arrays = {k: v.copy() for k, v in seed_arrays.items()}
    numeric = np.zeros_like(arrays[name])
    eps = 1e-6
    for index in np.ndindex(arrays[name].shape):
        keep = arrays[name][index]
        arrays[name][index] = keep + eps
        up = bptt.numpy_output_loss(arrays)
        arrays[name][index] = keep - eps
        down = bptt.numpy_output_loss(arrays)
        arrays[name][index] = keep
        numeric[index] = (up - down) / (2 * eps)
    np.testing.assert_allclose(hand, numeric, rtol=1e-6, atol=1e-8)


def test_numpy_reference_backward_matches_the_seeds_printed_gradients(bptt, seed_arrays):
    # The readers' numpy version must itself be the seed's algorithm, not just agree with rnnkit.
    reference = bptt.numpy_gradients(seed_arrays)
    for name, (expected, tolerance) in SEED_GRADIENTS.items():
        np.testing.assert_allclose(reference[name], expected, **tolerance, err_msg=name)


def test_seed_arrays_leave_numpys_global_generator_alone(bptt):
    np.random.seed(1234)
    before = np.random.get_state()[1].copy()
    bptt.seed_arrays()
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_bptt_script_runs():
    stdout = run_example("seed003_bptt")
    for printed in ("6.07961714e-02", "-0.04446273", "-1.16043009e+00", "0.78119033", "0.33991813"):
        assert printed in stdout
