#pragma once
// ember::nn in one include: modules, layers, init and models.
#include "nn/clip_grad.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/models.h"
#include "nn/module.h"
