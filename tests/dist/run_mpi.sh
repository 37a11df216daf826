#!/usr/bin/env bash
# Runs a program on N local MPI processes: tests/dist/run_mpi.sh N PROGRAM [ARGS...]
# Used by CTest (dist_mpi_np2) and by dist_launch_test. Exits 77 (CTest: skipped) with a
# message when mpirun is missing. Adds what containers and CI boxes need: --allow-run-as-root
# as root, --oversubscribe (more ranks than cores), shared-memory transport only, and one
# OpenMP thread per rank unless OMP_NUM_THREADS is set.
set -u
np=$1
shift
MPIRUN=${MPIEXEC:-$(command -v mpirun || true)}
if [ -z "$MPIRUN" ] || [ ! -x "$MPIRUN" ]; then
  echo "SKIPPED: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"
  exit 77
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Under AddressSanitizer (scripts/sanitize.sh asan): Open MPI's own leaks are suppressed by
# library name (scripts/sanitize/lsan.supp), which needs whole stacks through its
# uninstrumented frames (the slow unwinder) and its plugins still mapped at exit (no dlclose).
if [ -n "${ASAN_OPTIONS:-}" ]; then
  export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
  export OMPI_MCA_mca_base_component_disable_dlclose=1
fi
export EMBER_DIST_TIMEOUT=${EMBER_DIST_TIMEOUT:-60}
args=(-np "$np")
if "$MPIRUN" --version 2>&1 | grep -q "Open MPI"; then
  args+=(--oversubscribe --bind-to none --mca btl self,vader)
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
  [ "$(id -u)" = 0 ] && args+=(--allow-run-as-root)
fi
exec "$MPIRUN" "${args[@]}" "$@"
