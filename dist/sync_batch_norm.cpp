// SyncBatchNorm's collective: a differentiable allreduce (sum) over the process group.
#include "dist/sync_batch_norm.h"

#include "autograd/node.h"

namespace ember::dist {

namespace {

Tensor allreduce_copy(const Tensor& t, ProcessGroup& pg) {
  Tensor out = t.detach().contiguous().clone();  // the collective works in place
  pg.allreduce(out, ReduceOp::sum)->wait();
  return out;
}

// y = sum_r x_r on every rank, so dL/dx_r = sum_s dL_s/dy: the gradient is summed too.
// Every rank's backward reaches this node at the same point (the graphs are the same), so
// the collectives stay matched.
struct AllReduceSumBackward : autograd::Node {
  ProcessGroup* pg = nullptr;
  TensorList apply(TensorList&& grads) override {
    if (!grads[0].defined()) return {Tensor()};
    return {allreduce_copy(grads[0], *pg)};
  }
  std::string name() const override { return "AllReduceSumBackward"; }
};

struct GroupSum : nn::CrossProcessSum {
  ProcessGroup* pg;
  explicit GroupSum(ProcessGroup* g) : pg(g ? g : &default_group()) {}
  int rank() const override { return pg->rank(); }
  int world_size() const override { return pg->world_size(); }
  Tensor sum(const Tensor& t) override { return all_reduce_sum(t, *pg); }
};

}  // namespace

Tensor all_reduce_sum(const Tensor& t, ProcessGroup& pg) {
  EMBER_CHECK(t.defined(), "all_reduce_sum: undefined input");
  Tensor y = allreduce_copy(t, pg);
  if (auto node = autograd::make_node<AllReduceSumBackward>({t})) {
    node->pg = &pg;
    autograd::set_history(y, node);
  }
  return y;
}

SyncBatchNorm2d::SyncBatchNorm2d(int64_t c, nn::BatchNormOptions opt, ProcessGroup* pg)
    : BatchNorm2d("SyncBatchNorm", c, opt) {
  sync = std::make_shared<GroupSum>(pg);
}

int convert_sync_batchnorm(nn::Module& model, ProcessGroup* pg) {
  auto shared = std::make_shared<GroupSum>(pg);
  int converted = 0;
  for (auto& [name, m] : model.named_modules()) {  // the model itself comes first
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(m.get())) {
      bn->sync = shared;
      ++converted;
    }
  }
  return converted;
}

}  // namespace ember::dist
