#pragma once
// The training layer: Trainer, hooks, TensorBoard, picture grids.
#include "train/hooks.h"
#include "train/image_grid.h"
#include "train/log.h"
#include "train/tensorboard.h"
#include "train/trainer.h"
