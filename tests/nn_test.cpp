// nn::Module mechanics, Linear/Sequential/Dropout/Flatten and init (the model zoo and the
// conv/pool/batch-norm layers are in models_test.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& v) {
  std::vector<std::string> out;
  for (const auto& [n, t] : v) out.push_back(n);
  return out;
}

// A module with its own parameter and buffer plus nested children, to check ordering.
struct Block : nn::Module {
  Tensor scale, count;
  std::shared_ptr<nn::Linear> proj;
  Block() : Module("Block") {
    scale = register_parameter("scale", ones({3}));
    count = register_buffer("count", zeros({}, {.dtype = DType::i64}));
    register_buffer("scratch", zeros({2}), /*persistent=*/false);
    proj = register_module("proj", std::make_shared<nn::Linear>(3, 2));
  }
  Tensor forward(const Tensor& x) override { return proj->forward(x * scale); }
};

struct Net : nn::Module {
  std::shared_ptr<nn::Linear> stem;
  std::shared_ptr<nn::Sequential> features;
  std::shared_ptr<Block> head;
  Net() : Module("Net") {
    stem = register_module("stem", std::make_shared<nn::Linear>(4, 3, /*bias=*/false));
    features = register_module(
        "features", std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
                        std::make_shared<nn::Linear>(3, 3), std::make_shared<nn::ReLU>(),
                        std::make_shared<nn::Dropout>(0.5), std::make_shared<nn::Linear>(3, 3)}));
    head = register_module("head", std::make_shared<Block>());
  }
  Tensor forward(const Tensor& x) override {
    return head->forward(features->forward(stem->forward(x)));
  }
};

TEST(Module, NamedParametersUsePyTorchDottedNamesInRegistrationOrder) {
  Net net;
  EXPECT_EQ(names_of(net.named_parameters()),
            (std::vector<std::string>{"stem.weight", "features.0.weight", "features.0.bias",
                                      "features.3.weight", "features.3.bias", "head.scale",
                                      "head.proj.weight", "head.proj.bias"}));
  EXPECT_EQ(names_of(net.named_parameters(/*recurse=*/false)), std::vector<std::string>{});
  EXPECT_EQ(names_of(net.named_buffers()), (std::vector<std::string>{"head.count", "head.scratch"}));
  EXPECT_EQ(net.parameters().size(), 8u);
  EXPECT_EQ(net.num_parameters(), 12 + 12 + 12 + 3 + 6 + 2);
  for (const auto& p : net.parameters()) EXPECT_TRUE(p.requires_grad());
  // The same handles the layers hold.
  EXPECT_TRUE(net.named_parameters()[0].second.is_same(net.stem->weight));
}

TEST(Module, StateDictHasParamsThenBuffersPerModuleAndSkipsNonPersistent) {
  Net net;
  auto sd = net.state_dict();
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{
                           "stem.weight", "features.0.weight", "features.0.bias",
                           "features.3.weight", "features.3.bias", "head.scale", "head.count",
                           "head.proj.weight", "head.proj.bias"}));
  EXPECT_EQ(sd.at("head.count").dtype(), DType::i64);
  EXPECT_EQ(sd.at("head.count").dim(), 0);
  EXPECT_FALSE(sd.at("stem.weight").requires_grad());
  // Detached views: they share memory with the module.
  EXPECT_EQ(sd.at("stem.weight").data_ptr(), net.stem->weight.data_ptr());
}

TEST(Module, NamedModulesAndChildren) {
  auto net = std::make_shared<Net>();
  std::vector<std::string> names;
  for (auto& [n, m] : net->named_modules()) names.push_back(n + ":" + m->type_name());
  EXPECT_EQ(names, (std::vector<std::string>{":Net", "stem:Linear", "features:Sequential",
                                             "features.0:Linear", "features.1:ReLU",
                                             "features.2:Dropout", "features.3:Linear",
                                             "head:Block", "head.proj:Linear"}));
  EXPECT_EQ(net->children().size(), 3u);
  EXPECT_TRUE(net->child("head").get() == net->head.get());
  Net on_stack;
  EXPECT_THROW(on_stack.named_modules(), Error);
  try {
    net->child("tail");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stem, features, head"), std::string::npos) << e.what();
  }
}

TEST(Module, RegisteringATakenNameThrows) {
  struct Bad : nn::Module {
    Bad() {
      register_parameter("w", zeros({1}));
      register_buffer("w", zeros({1}));
    }
  };
  EXPECT_THROW(Bad(), Error);
  struct Dotted : nn::Module {
    Dotted() { register_parameter("a.b", zeros({1})); }
  };
  EXPECT_THROW(Dotted(), Error);
}

TEST(Module, TrainEvalPropagateToEveryDescendant) {
  auto net = std::make_shared<Net>();
  EXPECT_TRUE(net->is_training());
  net->eval();
  for (auto& [n, m] : net->named_modules()) EXPECT_FALSE(m->is_training()) << n;
  net->features->train();
  EXPECT_FALSE(net->is_training());
  EXPECT_TRUE((*net->features)[2]->is_training());
  net->train();
  for (auto& [n, m] : net->named_modules()) EXPECT_TRUE(m->is_training()) << n;
}

TEST(Module, ForwardWithoutOverrideThrows) {
  nn::Module m("Empty");
  EXPECT_THROW(m.forward(zeros({1})), Error);
}

TEST(Linear, ForwardMatchesHandComputedValues) {
  nn::Linear fc(3, 2);
  {
    NoGradGuard g;
    fc.weight.copy_(from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
    fc.bias.copy_(from_vector<float>({0.5f, -1.f}, {2}));
  }
  Tensor x = from_vector<float>({1, 0, -1, 2, 1, 0}, {2, 3});
  // y = x W^T + b: [1-3, 4-6] + b = [-1.5, -3]; [2+2, 8+5] + b = [4.5, 12]
  EXPECT_TRUE(all_close(fc(x), from_vector<float>({-1.5f, -3.f, 4.5f, 12.f}, {2, 2})));
  EXPECT_THROW(fc(zeros({2, 4})), Error);
}

TEST(Linear, ShapesAndNoBias) {
  nn::Linear fc(400, 120);
  EXPECT_EQ(fc.weight.shape(), (Shape{120, 400}));
  EXPECT_EQ(fc.bias.shape(), (Shape{120}));
  nn::Linear nb(4, 2, /*bias=*/false);
  EXPECT_FALSE(nb.bias.defined());
  EXPECT_EQ(names_of(nb.named_parameters()), std::vector<std::string>{"weight"});
  EXPECT_EQ(nb.repr(), "Linear(in_features=4, out_features=2, bias=False)");
}

TEST(Linear, DefaultInitIsUniformWithinOneOverSqrtFanIn) {
  manual_seed(7);
  nn::Linear fc(1000, 500);  // 500k weights
  const double bound = 1.0 / std::sqrt(1000.0);
  auto w = fc.weight.to_vector<double>();
  double mn = 1e9, mx = -1e9, sum = 0, sq = 0;
  for (double v : w) {
    mn = std::min(mn, v);
    mx = std::max(mx, v);
    sum += v;
    sq += v * v;
  }
  double mean = sum / double(w.size());
  double var = sq / double(w.size()) - mean * mean;
  EXPECT_GE(mn, -bound);
  EXPECT_LE(mx, bound);
  EXPECT_GT(mx, 0.99 * bound);  // the range is used, not a smaller one
  EXPECT_LT(mn, -0.99 * bound);
  EXPECT_NEAR(mean, 0.0, 0.01 * bound);
  EXPECT_NEAR(var, bound * bound / 3.0, 0.01 * bound * bound / 3.0);  // U(-b, b) variance
  for (double v : fc.bias.to_vector<double>()) {
    EXPECT_GE(v, -bound);
    EXPECT_LE(v, bound);
  }
}

TEST(Linear, InitIsSeededByTheDefaultGenerator) {
  manual_seed(42);
  nn::Linear a(20, 10);
  manual_seed(42);
  nn::Linear b(20, 10);
  nn::Linear c(20, 10);  // continues the stream: different numbers
  EXPECT_TRUE(all_close(a.weight, b.weight, 0, 0));
  EXPECT_TRUE(all_close(a.bias, b.bias, 0, 0));
  EXPECT_FALSE(all_close(a.weight, c.weight, 0, 0));
}

TEST(Init, FanComputationAndGains) {
  auto [fi, fo] = nn::init::calculate_fan_in_and_fan_out(zeros({6, 1, 5, 5}));
  EXPECT_EQ(fi, 25);
  EXPECT_EQ(fo, 150);
  auto [li, lo] = nn::init::calculate_fan_in_and_fan_out(zeros({120, 400}));
  EXPECT_EQ(li, 400);
  EXPECT_EQ(lo, 120);
  EXPECT_THROW(nn::init::calculate_fan_in_and_fan_out(zeros({5})), Error);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("tanh"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("leaky_relu", std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("linear"), 1.0);
  EXPECT_THROW(nn::init::calculate_gain("swish"), Error);
}

// Mean and standard deviation of a tensor's elements.
std::pair<double, double> moments(const Tensor& t) {
  auto v = t.to_vector<double>();
  double s = 0, q = 0;
  for (double x : v) s += x, q += x * x;
  double m = s / double(v.size());
  return {m, std::sqrt(q / double(v.size()) - m * m)};
}

TEST(Init, KaimingAndXavierStatistics) {
  manual_seed(3);
  Tensor w = empty({256, 64, 3, 3});  // fan_in 576, fan_out 2304
  nn::init::kaiming_normal_(w);       // std = sqrt(2) / sqrt(576)
  auto [m1, s1] = moments(w);
  EXPECT_NEAR(m1, 0.0, 0.002);
  EXPECT_NEAR(s1, std::sqrt(2.0 / 576.0), 0.01 * std::sqrt(2.0 / 576.0));

  nn::init::kaiming_normal_(w, 0.0, nn::init::FanMode::fan_out, "relu");
  EXPECT_NEAR(moments(w).second, std::sqrt(2.0 / 2304.0), 0.01 * std::sqrt(2.0 / 2304.0));

  nn::init::kaiming_uniform_(w, 0.0, nn::init::FanMode::fan_in, "relu");
  double b = std::sqrt(2.0) * std::sqrt(3.0 / 576.0);
  auto v = w.to_vector<double>();
  EXPECT_LE(*std::max_element(v.begin(), v.end()), b);
  EXPECT_GE(*std::min_element(v.begin(), v.end()), -b);
  EXPECT_NEAR(moments(w).second, b / std::sqrt(3.0), 0.01 * b / std::sqrt(3.0));

  nn::init::xavier_uniform_(w);
  double xb = std::sqrt(6.0 / (576.0 + 2304.0));
  v = w.to_vector<double>();
  EXPECT_LE(*std::max_element(v.begin(), v.end()), xb);
  EXPECT_GE(*std::min_element(v.begin(), v.end()), -xb);

  nn::init::xavier_normal_(w, 2.0);
  EXPECT_NEAR(moments(w).second, 2.0 * std::sqrt(2.0 / 2880.0), 0.01 * 2.0 * std::sqrt(2.0 / 2880.0));

  nn::init::normal_(w, 3.0, 0.5);
  auto [m2, s2] = moments(w);
  EXPECT_NEAR(m2, 3.0, 0.005);
  EXPECT_NEAR(s2, 0.5, 0.005);

  nn::init::ones_(w);
  EXPECT_EQ(moments(w), std::make_pair(1.0, 0.0));
  nn::init::zeros_(w);
  EXPECT_EQ(moments(w), std::make_pair(0.0, 0.0));
  nn::init::constant_(w, -2.5);
  EXPECT_EQ(moments(w).first, -2.5);

  Tensor ints = zeros({2, 2}, {.dtype = DType::i64});
  EXPECT_THROW(nn::init::uniform_(ints, 0, 1), Error);
}

TEST(Init, WorksOnParametersThatRequireGrad) {
  Tensor w = zeros({4, 4});
  w.requires_grad_();
  nn::init::uniform_(w, -1, 1);  // outside autograd, no in-place-on-leaf error
  EXPECT_TRUE(w.is_leaf());
  EXPECT_FALSE(w.grad_fn());
}

TEST(Sequential, ChildrenAreNumberedAndRunInOrder) {
  nn::Sequential seq{std::make_shared<nn::Linear>(2, 3), std::make_shared<nn::ReLU>(),
                     std::make_shared<nn::Linear>(3, 1)};
  EXPECT_EQ(names_of(seq.named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  auto l0 = std::dynamic_pointer_cast<nn::Linear>(seq[0]);
  auto l2 = std::dynamic_pointer_cast<nn::Linear>(seq[2]);
  {
    NoGradGuard g;
    l0->weight.copy_(from_vector<float>({1, 0, 0, 1, -1, -1}, {3, 2}));
    l0->bias.zero_();
    l2->weight.copy_(from_vector<float>({1, 2, 3}, {1, 3}));
    l2->bias.fill_(0.5);
  }
  // x = (1, -2): hidden = relu(1, -2, 1) = (1, 0, 1); y = 1 + 3 + 0.5
  EXPECT_TRUE(all_close(seq(from_vector<float>({1, -2}, {1, 2})), from_vector<float>({4.5f}, {1, 1})));
  EXPECT_THROW(seq[3], Error);
  EXPECT_EQ(seq.repr(),
            "Sequential(\n"
            "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
            "  (1): ReLU()\n"
            "  (2): Linear(in_features=3, out_features=1, bias=True)\n"
            ")");
}

TEST(Dropout, IdentityInEvalScaledMaskInTrain) {
  nn::Dropout d(0.5);
  EXPECT_EQ(d.repr(), "Dropout(p=0.5, inplace=False)");
  Tensor x = ones({10000});
  d.eval();
  EXPECT_TRUE(all_close(d(x), x, 0, 0));
  d.train();
  auto v = d(x).to_vector<float>();
  int64_t zeros_seen = 0;
  for (float e : v) {
    EXPECT_TRUE(e == 0.f || e == 2.f) << e;
    zeros_seen += e == 0.f;
  }
  EXPECT_NEAR(double(zeros_seen) / 10000.0, 0.5, 0.03);
  EXPECT_THROW(nn::Dropout(1.5), Error);
}

TEST(Flatten, KeepsTheBatchDim) {
  nn::Flatten f;
  EXPECT_EQ(f(zeros({2, 3, 4, 5})).shape(), (Shape{2, 60}));
  nn::Flatten all(0);
  EXPECT_EQ(all(zeros({2, 3, 4})).shape(), (Shape{24}));
}

TEST(StateDict, RoundTripRestoresEveryValue) {
  manual_seed(1);
  Net a;
  manual_seed(2);
  Net b;
  EXPECT_FALSE(all_close(a.stem->weight, b.stem->weight));
  {
    NoGradGuard g;
    a.head->count.fill_(17);
  }
  // Snapshot a's state (clones), load it into b.
  nn::StateDict snap;
  for (const auto& [k, t] : a.state_dict()) snap.insert(k, t.clone());
  auto res = b.load_state_dict(snap);
  EXPECT_TRUE(res.missing_keys.empty());
  EXPECT_TRUE(res.unexpected_keys.empty());
  for (const auto& [k, t] : a.state_dict()) EXPECT_TRUE(all_close(b.state_dict().at(k), t, 0, 0)) << k;
  EXPECT_EQ(b.head->count.item<int64_t>(), 17);
  // Loading copies: b's tensors keep their identity and stay independent of the snapshot.
  EXPECT_TRUE(b.named_parameters()[0].second.is_same(b.stem->weight));
  EXPECT_NE(b.stem->weight.data_ptr(), snap.at("stem.weight").data_ptr());
  EXPECT_TRUE(b.stem->weight.requires_grad());
}

TEST(StateDict, LoadConvertsDtype) {
  nn::Linear a(3, 2);
  nn::StateDict sd;
  sd.insert("weight", ones({2, 3}, {.dtype = DType::f64}));
  sd.insert("bias", zeros({2}, {.dtype = DType::f64}));
  a.load_state_dict(sd);
  EXPECT_EQ(a.weight.dtype(), DType::f32);
  EXPECT_TRUE(all_close(a.weight, ones({2, 3})));
}

TEST(StateDict, StrictLoadListsMissingUnexpectedAndMisshapedKeysInOneError) {
  Net net;
  auto before = net.stem->weight.clone();
  nn::StateDict sd;
  for (const auto& [k, t] : net.state_dict()) {
    if (k == "head.proj.bias" || k == "head.count") continue;               // missing
    if (k == "features.3.weight") {
      sd.insert(k, zeros({3, 4}));                                          // mis-shaped
      continue;
    }
    sd.insert(k, zeros_like(t));
  }
  sd.insert("head.extra", zeros({1}));                                      // unexpected
  try {
    net.load_state_dict(sd);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("Error(s) in loading state_dict for Net"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing keys (2): head.count, head.proj.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected keys (1): head.extra"), std::string::npos) << msg;
    EXPECT_NE(msg.find("features.3.weight (expected [3, 3], got [3, 4])"), std::string::npos) << msg;
  }
  // Nothing was copied.
  EXPECT_TRUE(all_close(net.stem->weight, before, 0, 0));

  // Non-strict: missing/unexpected are reported, but a shape mismatch is still an error.
  EXPECT_THROW(net.load_state_dict(sd, /*strict=*/false), Error);
  sd.set("features.3.weight", zeros({3, 3}));
  auto res = net.load_state_dict(sd, /*strict=*/false);
  EXPECT_EQ(res.missing_keys, (std::vector<std::string>{"head.count", "head.proj.bias"}));
  EXPECT_EQ(res.unexpected_keys, std::vector<std::string>{"head.extra"});
  EXPECT_TRUE(all_close(net.stem->weight, zeros({3, 4}), 0, 0));
}

TEST(StateDict, ContainerBasics) {
  nn::StateDict sd;
  sd.insert("a", zeros({1}));
  sd.insert("b", ones({2}));
  EXPECT_THROW(sd.insert("a", zeros({1})), Error);
  EXPECT_TRUE(sd.contains("b"));
  EXPECT_FALSE(sd.get("c").defined());
  EXPECT_THROW(sd.at("c"), Error);
  sd.set("a", ones({3}));
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(sd.at("a").numel(), 3);
  nn::StateDict from_items(sd.items());
  EXPECT_EQ(from_items.keys(), sd.keys());
  EXPECT_THROW(nn::StateDict({{"x", zeros({1})}, {"x", zeros({1})}}), Error);
}

TEST(Module, ZeroGradDropsOrZeroesGradients) {
  Net net;
  net.eval();  // no dropout randomness needed here
  Tensor loss = net(ones({2, 4})).sum();
  loss.backward();
  for (const auto& [n, p] : net.named_parameters()) EXPECT_TRUE(p.grad().defined()) << n;
  net.zero_grad(/*set_to_none=*/false);
  for (const auto& [n, p] : net.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << n;
    EXPECT_TRUE(all_close(p.grad(), zeros_like(p), 0, 0)) << n;
  }
  net.zero_grad();
  for (const auto& [n, p] : net.named_parameters()) EXPECT_FALSE(p.grad().defined()) << n;
}

TEST(Module, ToDTypeConvertsInPlaceKeepingHandles) {
  Net net;
  Tensor held = net.stem->weight;  // e.g. an optimizer's handle
  auto before = held.to_vector<double>();
  net.eval();
  net(ones({1, 4})).sum().backward();
  net.to(DType::f64);
  EXPECT_EQ(held.dtype(), DType::f64);
  EXPECT_TRUE(held.is_same(net.stem->weight));
  EXPECT_EQ(held.to_vector<double>(), before);  // f32 -> f64 is exact
  EXPECT_EQ(held.grad().dtype(), DType::f64);
  EXPECT_TRUE(held.requires_grad());
  EXPECT_EQ(net.head->count.dtype(), DType::i64);  // integer buffers keep their dtype
  // The converted module still runs forward and backward.
  net.zero_grad();
  net(ones({1, 4}, {.dtype = DType::f64})).sum().backward();
  EXPECT_EQ(held.grad().dtype(), DType::f64);
  EXPECT_EQ(net.device(), kCPU);
  net.to(kCPU);  // no-op
  EXPECT_TRUE(held.is_same(net.stem->weight));
  EXPECT_THROW(net.to(DType::i32), Error);
}

// Note [Module device moves]: a graph recorded before to() refuses backward, rather than
// running on the saved pre-move tensors and sending gradients to leaves that have moved.
TEST(Module, AGraphRecordedBeforeAMoveRefusesBackward) {
  Net net;
  net.eval();
  Tensor y = net(ones({2, 4}));
  net.to(DType::f64);
  EXPECT_ERROR(y.sum().backward(), "moved with to()");
  EXPECT_FALSE(net.stem->weight.grad().defined());
  // Recorded after the move, it runs.
  net(ones({2, 4}, {.dtype = DType::f64})).sum().backward();
  EXPECT_EQ(net.stem->weight.grad().dtype(), DType::f64);
}

TEST(Errors, KeepTheSourceLocationBesideTheMessage) {
  try {
    (void)zeros({2}).view({3});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.source_file().find(".cpp"), std::string::npos) << e.source_file();
    EXPECT_GT(e.source_line(), 0);
    EXPECT_EQ(std::string(e.what()).find(e.source_file()), std::string::npos);  // the message stays clean
  }
}

TEST(Module, ReprIsPyTorchLike) {
  Net net;
  EXPECT_EQ(net.repr(),
            "Net(\n"
            "  (stem): Linear(in_features=4, out_features=3, bias=False)\n"
            "  (features): Sequential(\n"
            "    (0): Linear(in_features=3, out_features=3, bias=True)\n"
            "    (1): ReLU()\n"
            "    (2): Dropout(p=0.5, inplace=False)\n"
            "    (3): Linear(in_features=3, out_features=3, bias=True)\n"
            "  )\n"
            "  (head): Block(\n"
            "    (proj): Linear(in_features=3, out_features=2, bias=True)\n"
            "  )\n"
            ")");
}

}  // namespace
}  // namespace ember
