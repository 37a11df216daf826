#pragma once
// The models of the mnist and cifar apps, with PyTorch's attribute names so their state
// dicts load into the same PyTorch modules (and back):
//   lenet   conv1 conv2 fc1 fc2 fc3            (LeNet-5, padded for 28x28 input)
//   mlp     fc1 fc2 fc3                        (784-512-256-10)
//   convnet conv1 conv2 dropout1 dropout2 fc1 fc2   (pytorch/examples mnist, logits out)
//   resnet20/32/44/56/110  CIFAR ResNets of He et al. 2016 (the naming of the widely used
//           akamaster/pytorch_resnet_cifar10: conv1 bn1 layer1..3.<i>.{conv1,bn1,conv2,bn2}
//           linear); option-A shortcuts (stride-2 subsampling + zero channel padding, no
//           parameters) by default, option B (1x1 conv + BN, "shortcut.0/1") on request
//   resnet18 the CIFAR ResNet-18 of kuangliu/pytorch-cifar (conv1 bn1 layer1..4 linear,
//           3x3 stem, shortcut = 1x1 conv + BN)
// Every model returns logits (N, num_classes); train them with cross_entropy.
#include <functional>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace ember::nn {

/// conv1 = Conv2d(1,6,5,padding=2) -> relu -> maxpool 2 -> conv2 = Conv2d(6,16,5) -> relu ->
/// maxpool 2 -> flatten -> fc1 = Linear(400,120) -> relu -> fc2 = Linear(120,84) -> relu ->
/// fc3 = Linear(84,num_classes). Input (N, 1, 28, 28).
class LeNet : public Module {
 public:
  explicit LeNet(int64_t num_classes = 10);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<Linear> fc1, fc2, fc3;
};

/// flatten -> fc1 = Linear(784,512) -> relu -> fc2 = Linear(512,256) -> relu ->
/// fc3 = Linear(256,num_classes). Input (N, 1, 28, 28) or (N, 784).
class MLP : public Module {
 public:
  explicit MLP(int64_t num_classes = 10);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Linear> fc1, fc2, fc3;
};

/// The official PyTorch MNIST example: conv1 = Conv2d(1,32,3) -> relu -> conv2 =
/// Conv2d(32,64,3) -> relu -> maxpool 2 -> dropout1 (0.25) -> flatten -> fc1 =
/// Linear(9216,128) -> relu -> dropout2 (0.5) -> fc2 = Linear(128,num_classes). Returns
/// logits (the example's log_softmax is part of our cross_entropy).
class ConvNet : public Module {
 public:
  explicit ConvNet(int64_t num_classes = 10);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<Dropout> dropout1, dropout2;
  std::shared_ptr<Linear> fc1, fc2;
};

/// CIFAR ResNet shortcuts when the shape changes: A = subsample + zero-pad channels (no
/// parameters), B = 1x1 convolution + batch norm.
enum class Shortcut { A, B };

/// The basic residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in_planes, int64_t planes, int64_t stride, Shortcut kind);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> shortcut;  // empty (identity) or, option B, conv + BN
  int64_t pad_channels = 0;              // option A: zero channels added on each side
  int64_t stride;
};

/// He et al.'s CIFAR ResNet with 6n+2 layers (n blocks per stage, 16/32/64 channels).
/// Weights of conv and linear layers are kaiming_normal_ (as akamaster's _weights_init).
class ResNetCifar : public Module {
 public:
  ResNetCifar(int64_t depth, int64_t num_classes = 10, Shortcut kind = Shortcut::A);
  Tensor forward(const Tensor& x) override;  // (N, 3, 32, 32) -> (N, num_classes)
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Sequential> layer1, layer2, layer3;
  std::shared_ptr<Linear> linear;
};

/// ResNet-18 for 32x32 inputs (kuangliu/pytorch-cifar): 3x3 stem without max pooling,
/// stages of 64/128/256/512 channels with 2 blocks each, 4x4 average pool, linear.
class ResNet18Cifar : public Module {
 public:
  explicit ResNet18Cifar(int64_t num_classes = 10);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Sequential> layer1, layer2, layer3, layer4;
  std::shared_ptr<Linear> linear;
};

/// One entry of the model table: its name, the input it fits ("CxHxW" of one sample, e.g.
/// "1x28x28" for MNIST, "3x32x32" for CIFAR-10), a one-line description, and its builder.
struct ModelInfo {
  std::string name;
  std::string input;
  std::string description;
  std::function<ModulePtr(int64_t num_classes)> make;
};
/// Every model make_model() builds, in a stable order.
const std::vector<ModelInfo>& model_registry();
/// The names of the models for `input` ("1x28x28", "3x32x32"; empty: all).
std::vector<std::string> model_names(const std::string& input = "");
/// The table entry of `name`, or null.
const ModelInfo* find_model(const std::string& name);
/// Builds a model by name (see the list at the top of this file); throws an ember::Error
/// listing the valid names for an unknown one.
ModulePtr make_model(const std::string& name, int64_t num_classes = 10);

}  // namespace ember::nn
