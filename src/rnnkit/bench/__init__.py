"""`rnnkit bench`: rnnkit's backends against torch.nn and hand-written loops, in one run.

One module per job:

    timing       contenders, the agreement check that refuses disagreeing ones, interleaved
                 rounds, paired ratios, the CPU share other processes took
    flops        GEMM flops of a training step (the formula), the measured GEMM peak
    contenders   compiled / reference / native / naive for one layer configuration
    plan         which configurations of the B x T x H grid, how many rounds, within a budget
    rows         one measured row, shared by the timed suites
    train_step   suite "train-step"
    varlen       suite "varlen" (PackedSequence and padded lengths=)
    inference    suite "inference" (the forward pass without gradients)
    scan         suite "scan" (MinGRU's scan mode at T = 1024)
    streaming    suites "streaming" and "generation"
    compile_cost suite "compile-cost" (the kernels' first use)
    report       markdown tables, the issue's targets met or not, JSON
    machine      CPU, cores, versions, commit
    command      the CLI options and run_bench
"""

from .command import add_bench_arguments, run_bench
from .contenders import LayerConfig, build_train_contenders
from .flops import gemm_peak, training_flops
from .timing import Contender, check_agreement

__all__ = [
    "Contender",
    "LayerConfig",
    "add_bench_arguments",
    "build_train_contenders",
    "check_agreement",
    "gemm_peak",
    "run_bench",
    "training_flops",
]
