// Model definitions (names and layouts as their PyTorch references, see nn/models.h).
#include "nn/models.h"

#include <algorithm>

#include "autograd/ops.h"
#include "nn/init.h"

namespace ember::nn {

// ---- MNIST models

LeNet::LeNet(int64_t num_classes) : Module("LeNet") {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(1, 6, 5, Conv2dOptions{.padding = {2, 2}}));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(6, 16, 5));
  fc1 = register_module("fc1", std::make_shared<Linear>(16 * 5 * 5, 120));
  fc2 = register_module("fc2", std::make_shared<Linear>(120, 84));
  fc3 = register_module("fc3", std::make_shared<Linear>(84, num_classes));
}

Tensor LeNet::forward(const Tensor& x) {
  // relu after max-pooling rather than before, as PyTorch's reference writes it: a max
  // commutes with a monotone map, so the values and the gradients are the same (a window's
  // gradient goes to its first maximum either way, or nowhere when that is <= 0), and relu
  // runs on a quarter of the elements. (models_test checks the two orders agree exactly.)
  Tensor h = relu(max_pool2d(conv1->forward(x), {2, 2}));  // (N, 6, 14, 14)
  h = relu(max_pool2d(conv2->forward(h), {2, 2}));         // (N, 16, 5, 5)
  h = flatten(h, 1);                                       // (N, 400)
  h = relu(fc1->forward(h));
  h = relu(fc2->forward(h));
  return fc3->forward(h);
}

MLP::MLP(int64_t num_classes) : Module("MLP") {
  fc1 = register_module("fc1", std::make_shared<Linear>(784, 512));
  fc2 = register_module("fc2", std::make_shared<Linear>(512, 256));
  fc3 = register_module("fc3", std::make_shared<Linear>(256, num_classes));
}

Tensor MLP::forward(const Tensor& x) {
  Tensor h = flatten(x, 1);  // (N, 784)
  h = relu(fc1->forward(h));
  h = relu(fc2->forward(h));
  return fc3->forward(h);
}

ConvNet::ConvNet(int64_t num_classes) : Module("ConvNet") {
  // Registration order as the PyTorch example's __init__ (it fixes named_modules order).
  conv1 = register_module("conv1", std::make_shared<Conv2d>(1, 32, 3));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(32, 64, 3));
  dropout1 = register_module("dropout1", std::make_shared<Dropout>(0.25));
  dropout2 = register_module("dropout2", std::make_shared<Dropout>(0.5));
  fc1 = register_module("fc1", std::make_shared<Linear>(9216, 128));
  fc2 = register_module("fc2", std::make_shared<Linear>(128, num_classes));
}

Tensor ConvNet::forward(const Tensor& x) {
  Tensor h = relu(conv1->forward(x));        // (N, 32, 26, 26)
  h = relu(conv2->forward(h));               // (N, 64, 24, 24)
  h = max_pool2d(h, {2, 2});                 // (N, 64, 12, 12)
  h = dropout1->forward(h);
  h = flatten(h, 1);                         // (N, 9216)
  h = relu(fc1->forward(h));
  h = dropout2->forward(h);
  return fc2->forward(h);
}

// ---- CIFAR ResNets

namespace {
std::shared_ptr<Conv2d> conv3x3(int64_t in, int64_t out, int64_t stride) {
  return std::make_shared<Conv2d>(
      in, out, 3, Conv2dOptions{.stride = {stride, stride}, .padding = {1, 1}, .bias = false});
}
}  // namespace

BasicBlock::BasicBlock(int64_t in_planes, int64_t planes, int64_t stride_, Shortcut kind)
    : Module("BasicBlock"), stride(stride_) {
  conv1 = register_module("conv1", conv3x3(in_planes, planes, stride));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", conv3x3(planes, planes, 1));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  shortcut = register_module("shortcut", std::make_shared<Sequential>());
  if (stride != 1 || in_planes != planes) {
    if (kind == Shortcut::A) {
      EMBER_CHECK(planes >= in_planes, "BasicBlock: option-A shortcuts cannot reduce channels (",
                  in_planes, " -> ", planes, ")");
      pad_channels = planes - in_planes;
    } else {
      shortcut->push_back(std::make_shared<Conv2d>(
          in_planes, planes, 1, Conv2dOptions{.stride = {stride, stride}, .bias = false}));
      shortcut->push_back(std::make_shared<BatchNorm2d>(planes));
    }
  }
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = relu(bn1->forward(conv1->forward(x)));
  out = bn2->forward(conv2->forward(out));
  Tensor sc;
  if (pad_channels > 0) {
    // Option A: keep every stride-th pixel, then zero channels on both sides.
    sc = slice(slice(x, 2, 0, x.size(2), stride), 3, 0, x.size(3), stride);
    int64_t lo = pad_channels / 2;
    sc = pad(sc, {0, 0, 0, 0, lo, pad_channels - lo});
  } else {
    sc = shortcut->forward(x);
  }
  return relu(out + sc);
}

ResNetCifar::ResNetCifar(int64_t depth, int64_t num_classes, Shortcut kind)
    : Module("ResNet") {
  EMBER_CHECK(depth >= 8 && (depth - 2) % 6 == 0,
              "ResNetCifar: depth must be 6n+2 (20, 32, 44, 56, 110, ...), got ", depth);
  int64_t n = (depth - 2) / 6;
  conv1 = register_module("conv1", conv3x3(3, 16, 1));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(16));
  int64_t in_planes = 16;
  auto make_layer = [&](int64_t planes, int64_t stride) {
    auto seq = std::make_shared<Sequential>();
    for (int64_t i = 0; i < n; ++i) {
      seq->push_back(std::make_shared<BasicBlock>(in_planes, planes, i == 0 ? stride : 1, kind));
      in_planes = planes;
    }
    return seq;
  };
  layer1 = register_module("layer1", make_layer(16, 1));
  layer2 = register_module("layer2", make_layer(32, 2));
  layer3 = register_module("layer3", make_layer(64, 2));
  linear = register_module("linear", std::make_shared<Linear>(64, num_classes));
  // akamaster's _weights_init: kaiming_normal_ on every conv and linear weight.
  // (named_modules() needs shared_from_this, unavailable in a constructor: walk children.)
  auto visit = [](auto&& self, const Module& m) -> void {
    for (const auto& c : m.children()) {
      if (auto conv = std::dynamic_pointer_cast<Conv2d>(c)) init::kaiming_normal_(conv->weight);
      if (auto lin = std::dynamic_pointer_cast<Linear>(c)) init::kaiming_normal_(lin->weight);
      self(self, *c);
    }
  };
  visit(visit, *this);
}

Tensor ResNetCifar::forward(const Tensor& x) {
  Tensor out = relu(bn1->forward(conv1->forward(x)));
  out = layer3->forward(layer2->forward(layer1->forward(out)));  // (N, 64, H/4, W/4)
  out = avg_pool2d(out, {out.size(2), out.size(3)});              // (N, 64, 1, 1)
  return linear->forward(flatten(out, 1));
}

ResNet18Cifar::ResNet18Cifar(int64_t num_classes) : Module("ResNet") {
  conv1 = register_module("conv1", conv3x3(3, 64, 1));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(64));
  int64_t in_planes = 64;
  auto make_layer = [&](int64_t planes, int64_t stride) {
    auto seq = std::make_shared<Sequential>();
    for (int64_t i = 0; i < 2; ++i) {
      seq->push_back(std::make_shared<BasicBlock>(in_planes, planes, i == 0 ? stride : 1, Shortcut::B));
      in_planes = planes;
    }
    return seq;
  };
  layer1 = register_module("layer1", make_layer(64, 1));
  layer2 = register_module("layer2", make_layer(128, 2));
  layer3 = register_module("layer3", make_layer(256, 2));
  layer4 = register_module("layer4", make_layer(512, 2));
  linear = register_module("linear", std::make_shared<Linear>(512, num_classes));
}

Tensor ResNet18Cifar::forward(const Tensor& x) {
  Tensor out = relu(bn1->forward(conv1->forward(x)));
  out = layer4->forward(layer3->forward(layer2->forward(layer1->forward(out))));  // (N, 512, 4, 4)
  out = avg_pool2d(out, {4, 4});
  return linear->forward(flatten(out, 1));
}

// ---- factory: one table of every model, the input it fits, and how to build it

const std::vector<ModelInfo>& model_registry() {
  static const std::vector<ModelInfo> table = [] {
    std::vector<ModelInfo> t = {
        {"lenet", "1x28x28", "LeNet-5 (padded for 28x28)", [](int64_t n) -> ModulePtr { return std::make_shared<LeNet>(n); }},
        {"mlp", "1x28x28", "784-512-256 MLP", [](int64_t n) -> ModulePtr { return std::make_shared<MLP>(n); }},
        {"convnet", "1x28x28", "the PyTorch MNIST example's CNN",
         [](int64_t n) -> ModulePtr { return std::make_shared<ConvNet>(n); }},
    };
    for (int64_t depth : {20, 32, 44, 56, 110})
      t.push_back({"resnet" + std::to_string(depth), "3x32x32",
                   "CIFAR ResNet-" + std::to_string(depth) + " (option-A shortcuts)",
                   [depth](int64_t n) -> ModulePtr { return std::make_shared<ResNetCifar>(depth, n, Shortcut::A); }});
    for (int64_t depth : {20, 32, 44, 56, 110})
      t.push_back({"resnet" + std::to_string(depth) + "-b", "3x32x32",
                   "CIFAR ResNet-" + std::to_string(depth) + " (option-B shortcuts)",
                   [depth](int64_t n) -> ModulePtr { return std::make_shared<ResNetCifar>(depth, n, Shortcut::B); }});
    t.push_back({"resnet18", "3x32x32", "ResNet-18 for 32x32 inputs",
                 [](int64_t n) -> ModulePtr { return std::make_shared<ResNet18Cifar>(n); }});
    return t;
  }();
  return table;
}

std::vector<std::string> model_names(const std::string& input) {
  std::vector<std::string> names;
  for (const ModelInfo& m : model_registry())
    if (input.empty() || m.input == input) names.push_back(m.name);
  return names;
}

const ModelInfo* find_model(const std::string& name) {
  for (const ModelInfo& m : model_registry())
    if (m.name == name) return &m;
  return nullptr;
}

ModulePtr make_model(const std::string& name, int64_t num_classes) {
  EMBER_CHECK(num_classes > 0, "make_model: num_classes must be positive, got ", num_classes);
  if (const ModelInfo* m = find_model(name)) return m->make(num_classes);
  std::string valid;
  for (const auto& n : model_names()) valid += (valid.empty() ? "" : ", ") + n;
  EMBER_THROW("unknown model '", name, "'; valid models are: ", valid);
}

}  // namespace ember::nn
