"""Native ONNX Runtime on one thread, for comparing with `xray bench` (README, "Benchmarks").

Uses what `bash ../shared/bench/ortweb/run.sh` leaves in its cache (a Python venv with
onnxruntime, and the shipped weights exported to ONNX), so run that harness once first:

    /var/tmp/ortweb-bench/venv/bin/python scripts/ort-native.py /var/tmp/ortweb-bench/work/model.onnx

Prints the median ms per image at batch 1 (300 runs) and images/s at batch 16, on random inputs,
as `xray bench` measures the page's model.
"""

import sys
import time

import numpy as np
import onnxruntime as ort

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
one = np.random.RandomState(1).randn(1, 1, 128, 128).astype(np.float32)
batch = np.random.RandomState(2).randn(16, 1, 128, 128).astype(np.float32)
for _ in range(20):
    session.run(None, {name: one})
times = []
for _ in range(300):
    t0 = time.perf_counter()
    session.run(None, {name: one})
    times.append((time.perf_counter() - t0) * 1e3)
times.sort()
for _ in range(5):
    session.run(None, {name: batch})
rounds = 40
t0 = time.perf_counter()
for _ in range(rounds):
    session.run(None, {name: batch})
per_sec = 16 * rounds / (time.perf_counter() - t0)
print(
    f"ONNX Runtime {ort.__version__}, 1 thread: {times[len(times) // 2]:.2f} ms/image "
    f"(median, batch 1), {per_sec:.0f} images/s (batch 16)"
)
