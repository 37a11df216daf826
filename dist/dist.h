#pragma once
// Data-parallel training: the process group (MPI launch), communicators (NCCL, MPI) and
// DistributedDataParallel.
#include "dist/communicator.h"
#include "dist/ddp.h"
#include "dist/eval.h"
#include "dist/process_group.h"
#include "dist/sync_batch_norm.h"
