#pragma once
// ember::optim in one include: optimizers and LR schedules.
#include "optim/grad_scaler.h"
#include "optim/lr_scheduler.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"
