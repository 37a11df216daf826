#pragma once
// Data-parallel training: the process group (launched by mpirun/srun, or the env:// way by
// ember's launcher or by hand), rendezvous stores, communicators (NCCL, MPI, Gloo) and
// DistributedDataParallel.
#include "dist/communicator.h"
#include "dist/ddp.h"
#include "dist/eval.h"
#include "dist/launch.h"
#include "dist/process_group.h"
#include "dist/store.h"
#include "dist/sync_batch_norm.h"
