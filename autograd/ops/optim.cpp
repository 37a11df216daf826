// Optimizer updates as ops (issue 11): optim/ writes its optimizers against these, not
// against kernels, so the device dispatch lives here with every other op's.
#include "kernels/sgd.h"

#include "autograd/ops.h"
#include "tensor/dispatch.h"

namespace ember {

void sgd_update_(const TensorList& params, const TensorList& grads, const TensorList& bufs,
                 const std::vector<bool>& first, const SgdOptions& opt) {
  const size_t n = params.size();
  const bool use_momentum = opt.momentum != 0.0;
  EMBER_CHECK(grads.size() == n && bufs.size() == n && first.size() == n, "sgd_update_: ", n, " parameters but ",
              grads.size(), " gradients, ", bufs.size(), " buffers and ", first.size(), " first-step flags");
  // Checks first, so a bad argument changes nothing.
  for (size_t i = 0; i < n; ++i) {
    const Tensor &p = params[i], &g = grads[i], &b = bufs[i];
    EMBER_CHECK(p.defined() && g.defined(), "sgd_update_: parameter ", i, " or its gradient is undefined");
    EMBER_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype() && g.device() == p.device(),
                "sgd_update_: gradient ", i, " (", g.shape_str(), ", ", dtype_name(g.dtype()), ", ", g.device(),
                ") does not match its parameter (", p.shape_str(), ", ", dtype_name(p.dtype()), ", ", p.device(), ")");
    EMBER_CHECK(p.is_contiguous() && g.is_contiguous(), "sgd_update_: parameter ", i,
                " and its gradient must be contiguous for the fused update");
    EMBER_CHECK(b.defined() == use_momentum, "sgd_update_: parameter ", i,
                use_momentum ? " needs a momentum buffer (momentum is on)" : " has a buffer but momentum is 0");
    if (use_momentum)
      EMBER_CHECK(b.shape() == p.shape() && b.dtype() == p.dtype() && b.device() == p.device() && b.is_contiguous(),
                  "sgd_update_: the momentum buffer of parameter ", i, " (", b.shape_str(), ", ",
                  dtype_name(b.dtype()), ", ", b.device(), ") does not match it");
    check_device_available(p.device(), "sgd_update_");
  }
#if EMBER_WITH_CUDA
  // Device checks that have completed by now (no wait): a bad label or index surfaces here
  // once the GPU has run its step, even in a loop that never calls item().
  for (const Tensor& p : params) {
    if (p.device().is_cuda()) {
      cuda::report_checks(p.device().index);
      break;
    }
  }
  // CUDA parameters of one device, dtype and first-step state go in one multi-tensor launch
  // sequence (instead of a launch per parameter).
  struct Group {
    Device device;
    DType dtype;
    bool first;
    std::vector<cuda::SgdSlice> slices;
  };
  std::vector<Group> groups;
#endif
  for (size_t i = 0; i < n; ++i) {
    const Tensor &p = params[i], &g = grads[i], &b = bufs[i];
    void* bptr = use_momentum ? b.data_ptr() : nullptr;
    if (p.device().is_cpu()) {
      cpu::sgd_step(p.dtype(), p.data_ptr(), g.data_ptr(), bptr, p.numel(), SgdStepArgs{opt, first[i]});
    } else {
#if EMBER_WITH_CUDA
      Group* grp = nullptr;
      for (Group& q : groups)
        if (q.device == p.device() && q.dtype == p.dtype() && q.first == first[i]) grp = &q;
      if (!grp) grp = &groups.emplace_back(Group{p.device(), p.dtype(), first[i], {}});
      grp->slices.push_back({p.data_ptr(), g.data_ptr(), bptr, p.numel()});
#endif
    }
  }
#if EMBER_WITH_CUDA
  for (const Group& q : groups)
    on_device(q.device, "sgd_update_", [] {},
              EMBER_ON_CUDA(cuda::sgd_step_multi(q.dtype, q.slices, SgdStepArgs{opt, q.first}, stream)));
#endif
  for (size_t i = 0; i < n; ++i) {
    params[i].bump_version();
    if (use_momentum) bufs[i].bump_version();
  }
}

}  // namespace ember
