// The built-in hooks of train::Trainer.
#include "train/hooks.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "io/safetensors.h"
#include "train/image_grid.h"
#include "train/tensorboard.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ember::train {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
bool log_point(const State& st, int64_t interval) {
  return st.epoch_iteration % interval == 0 || st.epoch_iteration == st.iterations_per_epoch;
}
}  // namespace

// ---- LRSchedulerHook

void LRSchedulerHook::after_iteration(Trainer& t) {
  if (t.scheduler() && t.options().sched_unit == "iteration") t.scheduler()->step();
}

void LRSchedulerHook::after_epoch(Trainer& t) {
  if (t.scheduler() && t.options().sched_unit == "epoch") t.scheduler()->step();
}

// ---- EvalHook

void EvalHook::after_epoch(Trainer& t) {
  if (!t.test_loader()) return;
  EvalResult r = t.evaluate();
  State& st = t.state();
  st.metrics.set("test_loss", r.loss);
  if (t.options().accuracy) st.metrics.set("test_acc", r.acc);
  st.metrics.set("test_samples", double(r.count));
  if (t.options().accuracy && r.acc > st.best_acc) {
    st.best_acc = r.acc;
    st.best_epoch = st.epoch + 1;
  }
}

// ---- ProgressHook

void ProgressHook::before_epoch(Trainer& t) {
  enabled_ = t.is_main();
  tty_ = enabled_ && t.options().progress && isatty(fileno(stdout));
  drawn_ = have_loss_ = false;
  last_draw_ = {};
}

double ProgressHook::images_per_second(const Trainer& t) const {
  double secs = seconds_since(t.state().epoch_start);
  return secs > 0 ? double(t.state().epoch_images) / secs : 0.0;
}

void ProgressHook::draw(Trainer& t) {
  const State& st = t.state();
  double secs = seconds_since(st.epoch_start);
  int64_t done = std::max<int64_t>(1, st.epoch_iteration);
  double eta = secs / double(done) * double(st.iterations_per_epoch - st.epoch_iteration);
  int width = 30;
  int fill = st.iterations_per_epoch > 0 ? int(double(width) * double(st.epoch_iteration) / double(st.iterations_per_epoch))
                                         : width;
  std::string bar(size_t(std::clamp(fill, 0, width)), '#');
  bar.resize(size_t(width), '.');
  std::string stats = have_loss_ ? (t.options().accuracy ? strf("loss %.4f acc %.2f%% ", loss_, acc_ * 100)
                                                         : strf("loss %.4f ", loss_))
                                 : "";
  std::printf("\repoch %lld/%lld [%s] %lld/%lld %s%.0f img/s ETA %.0fs   ", (long long)st.epoch + 1,
              (long long)st.epochs, bar.c_str(), (long long)st.epoch_iteration, (long long)st.iterations_per_epoch,
              stats.c_str(), images_per_second(t), eta);
  std::fflush(stdout);
  drawn_ = true;
  last_draw_ = std::chrono::steady_clock::now();
}

void ProgressHook::after_iteration(Trainer& t) {
  if (!enabled_) return;
  const State& st = t.state();
  if (log_point(st, t.options().log_interval)) {
    // This rank's running loss and accuracy (reading them waits for the device).
    loss_ = st.running_loss();
    acc_ = st.running_accuracy();
    have_loss_ = true;
    double secs = seconds_since(st.epoch_start);
    int64_t done = std::max<int64_t>(1, st.epoch_iteration);
    double eta = secs / double(done) * double(st.iterations_per_epoch - st.epoch_iteration);
    std::string acc = t.options().accuracy ? strf(" acc %.2f%%", acc_ * 100) : "";
    std::string line = strf("epoch %lld iter %lld/%lld loss %.4f%s %.0f img/s ETA %.0fs", (long long)st.epoch + 1,
                            (long long)st.epoch_iteration, (long long)st.iterations_per_epoch, loss_, acc.c_str(),
                            images_per_second(t), eta);
    if (tty_) {
      draw(t);
      t.log().file_only(line);  // the console shows the bar
    } else {
      t.log().info(line);
    }
  } else if (tty_ && std::chrono::steady_clock::now() - last_draw_ > std::chrono::milliseconds(100)) {
    draw(t);
  }
}

void ProgressHook::finish() {
  if (tty_ && drawn_) {
    std::printf("\n");
    std::fflush(stdout);
  }
  drawn_ = false;
}

// ---- LogHook

void LogHook::after_epoch(Trainer& t) {
  State& st = t.state();
  Metrics& m = st.metrics;
  m.set("epoch_seconds", seconds_since(st.epoch_start));
  std::string train = strf("train loss %.4f", m.get("train_loss", 0));
  if (m.has("train_acc")) train += strf(" acc %.2f%%", m.get("train_acc"));
  std::string test;
  if (m.has("test_loss")) {
    test = strf(" | test loss %.4f", m.get("test_loss"));
    if (m.has("test_acc")) test += strf(" acc %.2f%%", m.get("test_acc"));
  }
  std::string amp;
  if (m.has("loss_scale")) amp = strf(" | loss scale %g", m.get("loss_scale"));
  if (m.has("skipped_steps")) amp += strf(amp.empty() ? " | %lld skipped" : ", %lld skipped", (long long)m.get("skipped_steps"));
  t.log().info(strf("epoch %lld/%lld: %s%s | lr %.5g%s | %.1fs, %.0f img/s", (long long)st.epoch + 1,
                    (long long)st.epochs, train.c_str(), test.c_str(), m.get("lr", 0), amp.c_str(),
                    m.get("epoch_seconds"), m.get("train_images_per_second", 0)));
}

void LogHook::after_train(Trainer& t) {
  const State& st = t.state();
  if (st.stop_requested())
    t.log().warn(strf("stopped after iteration %lld: %s", (long long)st.iteration, st.stop_reason().c_str()));
  else if (t.options().accuracy && st.best_epoch > 0)
    t.log().info(strf("best test accuracy %.2f%% (epoch %lld)", st.best_acc, (long long)st.best_epoch));
}

// ---- MetricsHook

void MetricsHook::after_epoch(Trainer& t) {
  if (!t.is_main() || t.options().out.empty()) return;
  json row = json::object();
  for (const auto& [k, v] : t.state().metrics.items()) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15 &&
        (k == "epoch" || k == "iteration" || k.ends_with("_samples") || k == "world_size"))
      row[k] = int64_t(v);
    else
      row[k] = v;
  }
  std::string path = t.out_path("metrics.jsonl");
  std::ofstream f(path, std::ios::app);
  EMBER_CHECK(f.good(), "cannot write ", path);
  f << row.dump() << "\n";
}

// ---- TensorBoardHook

TensorBoardHook::TensorBoardHook(std::string dir) : dir_(std::move(dir)) {}
TensorBoardHook::~TensorBoardHook() = default;

void TensorBoardHook::before_train(Trainer& t) {
  if (t.is_main() && !writer_) {
    writer_ = std::make_unique<SummaryWriter>(dir_);
    t.log().info("TensorBoard events in " + writer_->path());
  }
}

void TensorBoardHook::after_iteration(Trainer& t) {
  if (!writer_) return;
  const State& st = t.state();
  if (!log_point(st, t.options().log_interval)) return;
  writer_->add_scalar("train/loss", st.running_loss(), st.iteration);
  if (t.options().accuracy) writer_->add_scalar("train/acc", 100.0 * st.running_accuracy(), st.iteration);
  writer_->add_scalar("train/lr", t.optimizer().lr(), st.iteration);
  double secs = seconds_since(st.epoch_start);
  writer_->add_scalar("train/images_per_second", secs > 0 ? double(st.epoch_images) / secs : 0.0, st.iteration);
}

void TensorBoardHook::after_epoch(Trainer& t) {
  if (!writer_) return;
  const State& st = t.state();
  const Metrics& m = st.metrics;
  const std::pair<const char*, const char*> tags[] = {
      {"train_loss", "epoch/train_loss"}, {"train_acc", "epoch/train_acc"}, {"lr", "epoch/lr"},
      {"train_images_per_second", "epoch/images_per_second"}, {"test_loss", "test/loss"}, {"test_acc", "test/acc"},
      {"loss_scale", "epoch/loss_scale"}, {"skipped_steps", "epoch/skipped_steps"}};
  for (const auto& [key, tag] : tags)
    if (m.has(key)) writer_->add_scalar(tag, m.get(key), st.iteration);
  writer_->flush();
}

void TensorBoardHook::after_train(Trainer&) {
  if (writer_) writer_->flush();
}

// ---- ImageGridHook

void ImageGridHook::after_epoch(Trainer& t) {
  const State& st = t.state();
  if (every_ <= 0 || (st.epoch + 1) % every_ != 0 || !t.is_main() || !t.test_loader()) return;
  const data::Dataset& ds = t.test_loader()->dataset();
  const std::vector<data::Field> fields = ds.fields();
  auto image = std::find_if(fields.begin(), fields.end(), [](const data::Field& f) { return f.name == "image"; });
  if (image == fields.end()) return;  // not images: nothing to draw
  const Shape shape = image->shape;
  if (shape.size() != 3 || (shape[0] != 1 && shape[0] != 3) || ds.size() == 0) return;
  int64_t n = std::min(count_, ds.size());
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = i;
  data::Batch b = ds.get_batch(idx);
  std::vector<int64_t> pred;
  {
    NoGradGuard no_grad;
    bool was_training = t.model().is_training();
    t.model().eval();
    Tensor out = t.model()(b.images().to(t.device()));
    pred = argmax(out, 1).to(kCPU).to_vector<int64_t>();
    t.model().train(was_training);
  }
  Image grid = prediction_grid(b.images(), b.labels().to_vector<int64_t>(), pred);
  std::vector<uint8_t> png = encode_png(grid);
  if (!t.options().out.empty()) {
    fs::path dir = fs::path(t.options().out) / "images";
    fs::create_directories(dir);
    last_file_ = (dir / ("epoch_" + std::to_string(st.epoch + 1) + ".png")).string();
    std::ofstream f(last_file_, std::ios::binary);
    f.write(reinterpret_cast<const char*>(png.data()), std::streamsize(png.size()));
    EMBER_CHECK(f.good(), "cannot write ", last_file_);
  }
  if (auto tb = t.find_hook<TensorBoardHook>(); tb && tb->writer())
    tb->writer()->add_image("test/predictions", png, grid.height, grid.width, grid.channels, st.iteration);
}

// ---- CheckpointHook

void CheckpointHook::checkpoint(Trainer& t, bool epoch_end) {
  if (t.options().out.empty()) return;
  int64_t keep = t.options().keep_checkpoints;
  // The numbered copies, checkpoint_<iteration>.ckpt (the `keep` highest iterations kept),
  // go through the same atomic writer as last.ckpt (a collective too; rank 0 writes), which
  // is written last so that it is the one a non-finite loss names.
  if (keep > 0) t.save_checkpoint(t.out_path("checkpoint_" + std::to_string(t.state().iteration) + ".ckpt"), epoch_end);
  t.save_checkpoint(t.out_path("last.ckpt"), epoch_end);
  if (!t.is_main() || keep <= 0) return;
  static const std::regex pattern(R"(checkpoint_(\d+)\.ckpt)");
  std::vector<std::pair<int64_t, fs::path>> found;
  for (const auto& e : fs::directory_iterator(t.options().out)) {
    std::smatch m;
    std::string name = e.path().filename().string();
    if (std::regex_match(name, m, pattern)) found.emplace_back(std::stoll(m[1].str()), e.path());
  }
  std::sort(found.begin(), found.end());
  for (size_t i = 0; i + size_t(keep) < found.size(); ++i) fs::remove(found[i].second);
}

void CheckpointHook::after_iteration(Trainer& t) {
  int64_t every = t.options().save_every;
  if (every > 0 && t.state().iteration % every == 0) checkpoint(t, false);
}

void CheckpointHook::after_epoch(Trainer& t) {
  State& st = t.state();
  if (t.options().out.empty()) return;
  if (st.best_epoch == st.epoch + 1 && t.is_main()) {  // EvalHook found a better test accuracy
    std::string best = t.out_path("best.safetensors");
    // Atomic and durable by itself (Note [Crash-safe checkpoints] in train/trainer.cpp).
    save_safetensors(best, t.model().state_dict().items(),
                     {{"epoch", std::to_string(st.epoch + 1)},
                      {"test_acc", std::to_string(st.best_acc)},
                      {kConvAlgosKey, conv_algorithm_choices()}});
    t.log().info(strf("saved the best model so far (%.2f%%) to %s", st.best_acc, best.c_str()));
  }
  checkpoint(t, true);
}

}  // namespace ember::train
