#pragma once
// ember: a small tensor and reverse-mode autograd library. One include for everything.
#include "autograd/grad_mode.h"
#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "tensor/cuda_context.h"
#include "tensor/dtype.h"
#include "tensor/generator.h"
#include "tensor/tensor.h"
