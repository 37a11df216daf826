// train::Trainer on a small generated dataset: hook order and priority, a user hook that
// sees every iteration and stops the run, a throwing hook (its name in the error, the last
// checkpoint intact and resumable), numbered checkpoints (exactly K kept, resume from any),
// schedules per iteration and per epoch against their closed forms, TensorBoard event files
// read back (framing, both CRCs, tags/steps/values equal to metrics.jsonl, the image
// summary a PNG of the stated size).

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include "test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace ember;

namespace {

/// 4 classes of 1x8x8 images: class c lights quadrant c, plus deterministic noise.
std::shared_ptr<data::Dataset> quadrants(int64_t n, uint32_t seed) {
  std::vector<uint8_t> px(static_cast<size_t>(n) * 64, 0);
  std::vector<int64_t> labels(static_cast<size_t>(n), 0);
  uint32_t s = seed;
  auto rnd = [&] { return (s = s * 1664525u + 1013904223u) >> 24; };
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = i % 4;
    labels[size_t(i)] = c;
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        bool lit = (y / 4) * 2 + (x / 4) == c;
        px[size_t(i * 64 + y * 8 + x)] = uint8_t(std::min<uint32_t>(255, (lit ? 160 : 0) + rnd() / 3));
      }
  }
  return std::make_shared<data::ImageTensorDataset>(from_vector(px, {n, 1, 8, 8}), from_vector(labels, {n}),
                                                    Shape{1, 8, 8});
}

struct Tiny : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  Tiny() : Module("Tiny") {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(64, 16));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(16, 4));
  }
  Tensor forward(const Tensor& x) override { return fc2->forward(relu(fc1->forward(flatten(x, 1)))); }
};

Tensor ce(const Tensor& out, const Tensor& y) { return cross_entropy(out, y); }

constexpr int64_t kIters = 8;  // 128 samples / 16 per batch

struct TrainRun {
  std::unique_ptr<train::Trainer> trainer;
  std::shared_ptr<optim::SGD> opt;
};

/// A fresh trainer (same seed: same initial weights and data order).
TrainRun make_run(train::TrainerOptions o, optim::SchedulerConfig sc = {.kind = "none"}) {
  manual_seed(7);
  auto model = std::make_shared<Tiny>();
  auto train_loader = std::make_shared<data::DataLoader>(
      quadrants(128, 1), data::DataLoaderOptions{.batch_size = 16, .shuffle = true, .seed = 3});
  auto test_loader = std::make_shared<data::DataLoader>(quadrants(40, 2), data::DataLoaderOptions{.batch_size = 20});
  auto opt = std::make_shared<optim::SGD>(model->parameters(), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  auto sched = optim::make_scheduler(*opt, sc);
  if (o.log_interval == 100) o.log_interval = 4;
  o.progress = false;
  TrainRun r;
  r.opt = opt;
  r.trainer = std::make_unique<train::Trainer>(model, ce, opt, sched, train_loader, test_loader, o);
  return r;
}

std::vector<std::pair<std::string, std::vector<float>>> weights(train::Trainer& t) {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  for (const auto& [k, v] : t.model().state_dict()) out.emplace_back(k, v.to_vector<float>());
  return out;
}

json checkpoint_meta(const fs::path& p) {
  SafetensorsFile f = load_safetensors(p.string());
  return json::parse(f.metadata.at("ember"));
}

std::vector<json> read_metrics(const fs::path& out) { return test::read_metrics(out.string()); }

/// Records every call it gets as "name:point".
struct Recorder : train::Hook {
  Recorder(std::string n, int p, std::vector<std::string>* log) : n_(std::move(n)), p_(p), log_(log) {}
  std::string name() const override { return n_; }
  int priority() const override { return p_; }
  void before_train(train::Trainer&) override { log_->push_back(n_ + ":before_train"); }
  void after_train(train::Trainer&) override { log_->push_back(n_ + ":after_train"); }
  void before_epoch(train::Trainer&) override { log_->push_back(n_ + ":before_epoch"); }
  void after_epoch(train::Trainer& t) override {
    log_->push_back(n_ + ":after_epoch");
    saw_test_acc = t.state().metrics.has("test_acc");
  }
  void before_iteration(train::Trainer& t) override {
    log_->push_back(n_ + ":before_iteration");
    batch_sizes.push_back(t.state().batch ? t.state().batch->size() : -1);
  }
  void after_iteration(train::Trainer& t) override {
    log_->push_back(n_ + ":after_iteration");
    iterations.push_back(t.state().iteration);
    losses.push_back(t.state().last_loss());
  }
  std::string n_;
  int p_;
  std::vector<std::string>* log_;
  std::vector<int64_t> iterations, batch_sizes;
  std::vector<double> losses;
  bool saw_test_acc = false;
};

}  // namespace

TEST(Trainer, HooksRunInPriorityOrderAndSeeEveryIteration) {
  std::vector<std::string> calls;
  TrainRun r = make_run({.epochs = 2});
  auto late = std::make_shared<Recorder>("late", 70, &calls);
  auto a = std::make_shared<Recorder>("a", 50, &calls);
  auto b = std::make_shared<Recorder>("b", 50, &calls);
  auto early = std::make_shared<Recorder>("early", 5, &calls);
  for (auto h : {late, a, b, early}) r.trainer->register_hook(h);
  train::FitResult res = r.trainer->fit();
  EXPECT_FALSE(res.stopped);
  std::vector<std::string> names;
  for (const auto& h : r.trainer->hooks()) names.push_back(h->name());
  EXPECT_EQ(names, (std::vector<std::string>{"early", "LRSchedulerHook", "EvalHook", "ProgressHook", "LogHook", "a",
                                             "b", "late"}));
  // Every point, in order: the hooks in priority order at each.
  std::vector<std::string> expected;
  auto at = [&](const std::string& point) {
    for (const char* n : {"early", "a", "b", "late"}) expected.push_back(std::string(n) + ":" + point);
  };
  at("before_train");
  for (int e = 0; e < 2; ++e) {
    at("before_epoch");
    for (int i = 0; i < kIters; ++i) {
      at("before_iteration");
      at("after_iteration");
    }
    at("after_epoch");
  }
  at("after_train");
  EXPECT_EQ(calls, expected);
  EXPECT_EQ(a->iterations, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}));
  for (int64_t s : a->batch_sizes) EXPECT_EQ(s, 16);
  for (double l : a->losses) EXPECT_TRUE(std::isfinite(l) && l > 0);
  EXPECT_TRUE(a->saw_test_acc);    // EvalHook (20) ran before it
  EXPECT_GT(res.best_acc, 90.0);   // the quadrants are easy
}

TEST(Trainer, AHookCanStopTheRunMidEpochOrAfterAnEpoch) {
  struct StopAt : train::Hook {
    std::string name() const override { return "StopAt"; }
    void after_iteration(train::Trainer& t) override {
      if (t.state().iteration == 5) t.state().request_stop("enough", "user");
    }
  };
  TrainRun r = make_run({.epochs = 3});
  r.trainer->register_hook(std::make_shared<StopAt>());
  train::FitResult res = r.trainer->fit();
  EXPECT_TRUE(res.stopped);
  EXPECT_EQ(res.stop_reason, "enough");
  EXPECT_EQ(res.stopped_by, "user");
  EXPECT_EQ(res.iteration, 5);
  EXPECT_EQ(res.best_epoch, 0);  // no epoch finished, none evaluated

  struct EarlyStop : train::Hook {
    std::string name() const override { return "EarlyStop"; }
    void after_epoch(train::Trainer& t) override {
      if (t.state().metrics.get("test_acc") > 50) t.state().request_stop("good enough");
    }
  };
  fs::path out = test::scratch_dir("trainer_early");
  TrainRun e = make_run({.epochs = 5, .out = out.string()});
  e.trainer->register_hook(std::make_shared<EarlyStop>());
  res = e.trainer->fit();
  EXPECT_TRUE(res.stopped);
  EXPECT_LT(read_metrics(out).size(), 5u);
  EXPECT_EQ(res.iteration, int64_t(read_metrics(out).size()) * kIters);
}

TEST(Trainer, AThrowingHookNamesItselfAndLeavesTheLastCheckpointResumable) {
  struct Exploder : train::Hook {
    std::string name() const override { return "Exploder"; }
    void after_iteration(train::Trainer& t) override {
      if (t.state().iteration == 11) throw std::runtime_error("boom");
    }
  };
  // A per-iteration schedule with warm-up: its position is part of the checkpoint.
  optim::SchedulerConfig sc{.kind = "linear", .total_steps = 3 * kIters, .warmup_steps = kIters};
  fs::path full = test::scratch_dir("trainer_full"), cut = test::scratch_dir("trainer_cut");
  TrainRun a = make_run({.epochs = 3, .out = full.string(), .sched_unit = "iteration"}, sc);
  a.trainer->fit();
  TrainRun b = make_run({.epochs = 3, .out = cut.string(), .save_every = 5, .sched_unit = "iteration"}, sc);
  b.trainer->register_hook(std::make_shared<Exploder>());
  try {
    b.trainer->fit();
    ADD_FAILURE() << "the hook's exception did not end fit()";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("Exploder"), std::string::npos) << what;
    EXPECT_NE(what.find("after_iteration"), std::string::npos) << what;
    EXPECT_NE(what.find("boom"), std::string::npos) << what;
  }
  json meta = checkpoint_meta(cut / "last.ckpt");
  EXPECT_EQ(meta["iteration"].get<int64_t>(), 10);
  EXPECT_FALSE(fs::exists(cut / "last.ckpt.tmp"));
  TrainRun c = make_run({.epochs = 3, .out = cut.string(), .resume = (cut / "last.ckpt").string(), .sched_unit = "iteration"}, sc);
  train::FitResult res = c.trainer->fit();
  EXPECT_EQ(res.iteration, 3 * kIters);
  EXPECT_EQ(weights(*c.trainer), weights(*a.trainer));
  std::vector<json> ma = read_metrics(full), mc = read_metrics(cut);
  ASSERT_EQ(ma.size(), 3u);
  ASSERT_EQ(mc.size(), 3u);  // epoch 1 before the failure, 2 and 3 after the resume
  EXPECT_EQ(ma[1]["train_loss"].get<double>(), mc[1]["train_loss"].get<double>());
  EXPECT_EQ(ma[2]["lr"].get<double>(), mc[2]["lr"].get<double>());
}

TEST(Trainer, NumberedCheckpointsKeepExactlyKAndResumeFromAny) {
  fs::path full = test::scratch_dir("trainer_numbered");
  TrainRun a = make_run({.epochs = 2, .out = full.string(), .save_every = 3, .keep_checkpoints = 3});
  a.trainer->fit();
  // Saves at iterations 3, 6, 8 (end of epoch 1), 9, 12, 15, 16 (end of epoch 2).
  std::vector<std::string> numbered;
  for (const auto& e : fs::directory_iterator(full))
    if (e.path().filename().string().rfind("checkpoint_", 0) == 0) numbered.push_back(e.path().filename().string());
  std::sort(numbered.begin(), numbered.end());
  EXPECT_EQ(numbered, (std::vector<std::string>{"checkpoint_12.ckpt", "checkpoint_15.ckpt", "checkpoint_16.ckpt"}));
  for (const std::string& name : numbered) {
    json meta = checkpoint_meta(full / name);
    EXPECT_EQ("checkpoint_" + std::to_string(meta["iteration"].get<int64_t>()) + ".ckpt", name);
    fs::path out = test::scratch_dir("trainer_from_" + name);
    TrainRun r = make_run({.epochs = 2, .out = out.string(), .resume = (full / name).string()});
    r.trainer->fit();
    EXPECT_EQ(weights(*r.trainer), weights(*a.trainer)) << "resumed from " << name;
  }
}

TEST(Trainer, SchedulesPerIterationAndPerEpochFollowTheirClosedForms) {
  // Records the lr each iteration trains with (before LRSchedulerHook, priority 10, steps it).
  struct LrLog : train::Hook {
    std::string name() const override { return "LrLog"; }
    int priority() const override { return 5; }
    void after_iteration(train::Trainer& t) override { lrs.push_back(t.optimizer().lr()); }
    std::vector<double> lrs;
  };
  const double base = 0.1;
  const int64_t T = 2 * kIters;
  {
    TrainRun r = make_run({.epochs = 2, .sched_unit = "iteration"}, {.kind = "cosine", .total_steps = T});
    auto log = std::make_shared<LrLog>();
    r.trainer->register_hook(log);
    r.trainer->fit();
    ASSERT_EQ(int64_t(log->lrs.size()), T);
    for (int64_t i = 0; i < T; ++i)
      EXPECT_NEAR(log->lrs[size_t(i)], base * (1 + std::cos(std::numbers::pi * double(i) / double(T))) / 2, 1e-12) << i;
  }
  {
    // The CIFAR script's piecewise-linear schedule: 0 -> base over 4 iterations, -> 0 at T.
    TrainRun r = make_run({.epochs = 2, .sched_unit = "iteration"}, {.kind = "linear", .total_steps = T, .warmup_steps = 4});
    auto log = std::make_shared<LrLog>();
    r.trainer->register_hook(log);
    r.trainer->fit();
    ASSERT_EQ(int64_t(log->lrs.size()), T);
    for (int64_t i = 0; i < T; ++i) {
      double f = i <= 4 ? double(i) / 4 : 1.0 - double(i - 4) / double(T - 4);
      EXPECT_NEAR(log->lrs[size_t(i)], base * f, 1e-12) << i;
    }
  }
  {
    // Per epoch: multistep at epochs 1 and 2 after a 1-epoch warm-up (start factor 1/3).
    TrainRun r = make_run({.epochs = 4}, {.kind = "multistep", .warmup_steps = 1, .milestones = {1, 2}, .gamma = 0.5});
    auto log = std::make_shared<LrLog>();
    r.trainer->register_hook(log);
    r.trainer->fit();
    ASSERT_EQ(int64_t(log->lrs.size()), 4 * kIters);
    const double per_epoch[] = {base / 3, base, base * 0.5, base * 0.25};
    for (int64_t i = 0; i < 4 * kIters; ++i) EXPECT_NEAR(log->lrs[size_t(i)], per_epoch[i / kIters], 1e-12) << i;
  }
}

TEST(Schedules, PiecewiseLinearClosedFormAndStateRoundTrip) {
  Tensor p = zeros({1}).requires_grad_();
  optim::SGD opt({p}, {.lr = 0.4});
  optim::PiecewiseLinearLR s(opt, {{0, 0.0}, {4, 1.0}, {24, 0.0}});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(2), 0.2);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 0.4);
  EXPECT_DOUBLE_EQ(s.lr_at(14), 0.2);
  EXPECT_DOUBLE_EQ(s.lr_at(24), 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(30), 0.0);
  for (int i = 0; i < 7; ++i) s.step();
  optim::SGD opt2({p}, {.lr = 0.4});
  optim::PiecewiseLinearLR s2(opt2, {{0, 1.0}});
  s2.load_state_dict(s.state_dict());
  EXPECT_EQ(s2.last_step(), 7);
  EXPECT_DOUBLE_EQ(opt2.lr(), s.lr_at(7));
  EXPECT_DOUBLE_EQ(s2.lr_at(20), s.lr_at(20));
  EXPECT_ERROR(optim::PiecewiseLinearLR(opt, {{3, 1.0}, {3, 0.0}}), "increase");
}

TEST(TensorBoard, Crc32cIsCastagnoli) {
  const char* s = "123456789";
  EXPECT_EQ(train::crc32c(s, 9), 0xE3069283u);  // the standard check value
  EXPECT_EQ(train::crc32c("", 0), 0u);
}

TEST(TensorBoard, EventFilesReadBackEqualToMetrics) {
  fs::path out = test::scratch_dir("trainer_tb");
  TrainRun r = make_run({.epochs = 2, .out = out.string(), .tensorboard = (out / "tb").string(), .image_every = 1,
                    .image_count = 10});
  r.trainer->fit();
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(out / "tb")) files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  std::string name = files[0].filename().string();
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;

  // The framing by hand: uint64 length, masked CRC of it, data, masked CRC of the data.
  std::ifstream f(files[0], std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), {});
  std::vector<std::string> records;
  size_t pos = 0;
  auto le = [&](size_t at, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(uint8_t(all[at + size_t(i)])) << (8 * i);
    return v;
  };
  while (pos < all.size()) {
    ASSERT_GE(all.size() - pos, 16u);
    uint64_t len = le(pos, 8);
    ASSERT_EQ(uint32_t(le(pos + 8, 4)), train::masked_crc32c(all.data() + pos, 8)) << "record " << records.size();
    ASSERT_LE(pos + 12 + len + 4, all.size());
    std::string data = all.substr(pos + 12, size_t(len));
    ASSERT_EQ(uint32_t(le(pos + 12 + len, 4)), train::masked_crc32c(data.data(), data.size()))
        << "record " << records.size();
    records.push_back(data);
    pos += 12 + size_t(len) + 4;
  }
  EXPECT_EQ(records, train::read_records(files[0].string()));
  ASSERT_GT(records.size(), 2u);
  train::EventRecord first = train::parse_event(records[0]);
  EXPECT_EQ(first.file_version, "brain.Event:2");
  EXPECT_GT(first.wall_time, 1.6e9);

  std::map<std::string, std::map<int64_t, float>> scalars;
  const train::EventRecord::Value* image = nullptr;
  std::vector<train::EventRecord> events;
  for (const std::string& rec : records) events.push_back(train::parse_event(rec));
  for (const auto& ev : events)
    for (const auto& v : ev.values) {
      if (v.has_simple_value) scalars[v.tag][ev.step] = v.simple_value;
      if (v.has_image) image = &v;
    }
  std::vector<json> m = read_metrics(out);
  ASSERT_EQ(m.size(), 2u);
  const std::pair<const char*, const char*> pairs[] = {{"train_loss", "epoch/train_loss"}, {"train_acc", "epoch/train_acc"},
                                                       {"lr", "epoch/lr"},           {"test_loss", "test/loss"},
                                                       {"test_acc", "test/acc"},
                                                       {"train_images_per_second", "epoch/images_per_second"}};
  for (const json& row : m) {
    int64_t step = row["iteration"].get<int64_t>();
    for (const auto& [key, tag] : pairs) {
      ASSERT_TRUE(scalars[tag].count(step)) << tag << " at " << step;
      EXPECT_EQ(scalars[tag][step], float(row[key].get<double>())) << tag << " at " << step;
    }
  }
  // Every log interval (4) the running loss; its last value of an epoch is the epoch's loss.
  EXPECT_EQ(scalars["train/loss"].size(), 4u);
  for (const auto& [step, v] : scalars["train/loss"]) EXPECT_EQ(step % 4, 0) << step;
  EXPECT_EQ(scalars["train/loss"][8], float(m[0]["train_loss"].get<double>()));
  EXPECT_EQ(scalars["train/lr"].size(), 4u);
  // The picture: 10 images of 8x8 in a 4x3 grid of 22x19 cells, as a PNG of that size.
  ASSERT_NE(image, nullptr);
  int w = 0, h = 0, c = 0;
  stbi_uc* px = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(image->encoded_image.data()),
                                      int(image->encoded_image.size()), &w, &h, &c, 0);
  ASSERT_NE(px, nullptr);
  stbi_image_free(px);
  EXPECT_EQ(w, image->width);
  EXPECT_EQ(h, image->height);
  EXPECT_EQ(c, 3);
  EXPECT_EQ(image->colorspace, 3);
  EXPECT_EQ(w, 4 * 22);
  EXPECT_EQ(h, 3 * 19);
  ASSERT_TRUE(fs::exists(out / "images" / "epoch_2.png"));
  ASSERT_NE(stbi_info((out / "images" / "epoch_2.png").string().c_str(), &w, &h, &c), 0);
  EXPECT_EQ(w, 4 * 22);
  EXPECT_EQ(h, 3 * 19);

  // A flipped byte is caught by the data CRC.
  all[all.size() - 10] ^= 0x20;
  fs::path bad = out / "bad.tfevents";
  std::ofstream(bad, std::ios::binary) << all;
  EXPECT_ERROR(train::read_records(bad.string()), "CRC");
}

TEST(ImageGrid, FramesRightGreenAndWrongRed) {
  Tensor imgs = zeros({2, 1, 8, 8});
  train::Image g = train::prediction_grid(imgs, {3, 1}, {3, 2});
  EXPECT_EQ(g.width, 2 * 22);
  EXPECT_EQ(g.height, 19);
  auto at = [&](int x, int y, int c) { return int(g.pixels[(size_t(y) * size_t(g.width) + size_t(x)) * 3 + size_t(c)]); };
  EXPECT_GT(at(0, 0, 1), 150);   // green frame: right
  EXPECT_EQ(at(0, 0, 0), 0);
  EXPECT_GT(at(22, 0, 0), 150);  // red frame: wrong
  EXPECT_EQ(at(22, 0, 1), 0);
  EXPECT_ERROR(train::prediction_grid(zeros({1, 2, 8, 8}), {0}, {0}), "channels");
}
