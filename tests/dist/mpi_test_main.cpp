// main() of the GoogleTest programs that run on several processes (tests/dist/*_test.cpp),
// under mpirun or ember's launcher (init_process_group picks the launch from the
// environment, Note [Launch]): every rank runs every test; rank 0 prints the usual report,
// the other ranks only their failures.
#include <gtest/gtest.h>

#include <cstdio>

#include "dist/dist.h"

namespace {

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::printf("[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                  r.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& t) override {
    if (t.result()->Failed()) std::printf("[rank %d] FAILED %s.%s\n", rank_, t.test_suite_name(), t.name());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ember::dist::ProcessGroup& g = ember::dist::init_process_group();
  if (g.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(g.rank()));
  }
  int rc = RUN_ALL_TESTS();
  ember::dist::destroy_process_group();
  return rc;
}
