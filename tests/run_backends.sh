#!/usr/bin/env bash
# `make test`'s suite: every test on JAX (with the doctests), and the tests
# marked `model` (what differs per backend) on PyTorch and TensorFlow. The
# JAX pass runs beside the other two, which run one after the other: most
# of a pass is single-threaded Python, so the two lines share the 2 cores.
# Each pass prints its 10 slowest tests; the exit status is non-zero if any
# pass failed.
set -u
BIN="${1:-.venv/bin}"
LOGS="$(mktemp -d)"
PYTEST=("$BIN/python" -m pytest -q --durations=10 -p no:cacheprovider)
start=$(date +%s)
# JAX keeps the programs it compiles in a cache for this run (fresh each
# time): the many tests that build the same small models, and the
# subprocesses of the CLI and resume tests, compile each program once.
# (Programs with a host call, as most balanced steps make, are never cached.)
(KERAS_BACKEND=jax JAX_COMPILATION_CACHE_DIR="$LOGS/jax-cache" \
  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
  JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0 \
  "${PYTEST[@]}" tests src/keras_mtl src/keras_mtl_cli \
  >"$LOGS/jax.log" 2>&1; echo $? >"$LOGS/jax.rc") &
# PyTorch on one thread: its pass took 2:09 instead of 4:05 beside the JAX
# pass (the tests' models are tiny; two threads only contend for the cores).
(OMP_NUM_THREADS=1 KERAS_BACKEND=torch "${PYTEST[@]}" -m model tests >"$LOGS/torch.log" 2>&1
 echo $? >"$LOGS/torch.rc"
 KERAS_BACKEND=tensorflow "${PYTEST[@]}" -m model tests >"$LOGS/tensorflow.log" 2>&1
 echo $? >"$LOGS/tensorflow.rc") &
wait
status=0
echo "=== all passes: $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s"
for backend in jax torch tensorflow; do
  rc=$(cat "$LOGS/$backend.rc" 2>/dev/null || echo 1)
  echo "=== KERAS_BACKEND=$backend: pytest exited $rc"
  [ "$rc" = 0 ] || status=1
done
# The logs last, so that the final line is pytest's own summary.
for backend in jax torch tensorflow; do
  echo "=== KERAS_BACKEND=$backend"
  cat "$LOGS/$backend.log"
done
rm -rf "$LOGS"
exit $status
