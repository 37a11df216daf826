#pragma once
// SyncBatchNorm: batch norm whose training statistics are those of the whole data-parallel
// batch (every process's samples), as torch.nn.SyncBatchNorm. Note [SyncBatchNorm
// statistics] in nn/batch_norm.cpp says how they are combined and differentiated.
//
// It lives in dist/ because it needs a process group; the layer itself is nn::BatchNorm2d
// with its `sync` member set, so models that hold their BatchNorm2d layers as typed members
// can be converted in place by convert_sync_batchnorm.
#include <memory>

#include "dist/process_group.h"
#include "nn/layers.h"

namespace ember::dist {

/// The sum of `t` over the ranks of `pg` (a collective: every rank calls it with the same
/// shape and dtype); differentiable: backward sums the output gradients over the ranks.
Tensor all_reduce_sum(const Tensor& t, ProcessGroup& pg);

/// A BatchNorm2d synchronized over `pg` (default: the default group). In a world of one,
/// in eval mode, and without batch statistics it is exactly BatchNorm2d.
class SyncBatchNorm2d : public nn::BatchNorm2d {
 public:
  explicit SyncBatchNorm2d(int64_t num_features, nn::BatchNormOptions opt = {}, ProcessGroup* pg = nullptr);
};

/// Makes every BatchNorm2d in `model` synchronized over `pg` (default: the default group),
/// in place: parameters, buffers and state-dict names stay as they are, as PyTorch's
/// convert_sync_batchnorm keeps them. Returns how many layers were converted.
int convert_sync_batchnorm(nn::Module& model, ProcessGroup* pg = nullptr);

}  // namespace ember::dist
