#pragma once
// The trainer's own parts, as hooks (the order and priorities: train/trainer.h).
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "train/trainer.h"

namespace ember::train {

class SummaryWriter;

/// Steps the scheduler after every iteration or after every epoch (options.sched_unit).
class LRSchedulerHook : public Hook {
 public:
  std::string name() const override { return "LRSchedulerHook"; }
  int priority() const override { return 10; }
  void after_iteration(Trainer& t) override;
  void after_epoch(Trainer& t) override;
};

/// After each epoch: test_loss, test_acc, test_samples into the metrics (all ranks).
class EvalHook : public Hook {
 public:
  std::string name() const override { return "EvalHook"; }
  int priority() const override { return 20; }
  void after_epoch(Trainer& t) override;
};

/// A live one-line bar (loss, images/s, ETA) when stdout is a terminal; a log line every
/// log_interval iterations (on a terminal: to the log file only).
class ProgressHook : public Hook {
 public:
  std::string name() const override { return "ProgressHook"; }
  int priority() const override { return 30; }
  void before_epoch(Trainer& t) override;
  void after_iteration(Trainer& t) override;
  void after_epoch(Trainer& t) override { finish(); }
  void after_train(Trainer& t) override { finish(); }
  /// Images per second of this epoch so far (over all ranks).
  double images_per_second(const Trainer& t) const;

 private:
  void draw(Trainer& t);
  void finish();
  bool enabled_ = false, tty_ = false, drawn_ = false, have_loss_ = false;
  double loss_ = 0, acc_ = 0;
  std::chrono::steady_clock::time_point last_draw_;
};

/// The epoch line and the run's summary (console and train.log).
class LogHook : public Hook {
 public:
  std::string name() const override { return "LogHook"; }
  int priority() const override { return 40; }
  void after_epoch(Trainer& t) override;
  void after_train(Trainer& t) override;
};

/// OUT/metrics.jsonl: the epoch's metrics as one JSON object per line.
class MetricsHook : public Hook {
 public:
  std::string name() const override { return "MetricsHook"; }
  int priority() const override { return 60; }
  void after_epoch(Trainer& t) override;
};

/// TensorBoard scalars every log_interval iterations (train/loss, train/acc, train/lr,
/// train/images_per_second) and per epoch (epoch/train_loss, epoch/train_acc, epoch/lr,
/// epoch/images_per_second, test/loss, test/acc), all at step = the global iteration.
class TensorBoardHook : public Hook {
 public:
  explicit TensorBoardHook(std::string dir);
  ~TensorBoardHook() override;
  std::string name() const override { return "TensorBoardHook"; }
  int priority() const override { return 70; }
  void before_train(Trainer& t) override;
  void after_iteration(Trainer& t) override;
  void after_epoch(Trainer& t) override;
  void after_train(Trainer& t) override;
  /// Null before before_train and on ranks > 0.
  SummaryWriter* writer() { return writer_.get(); }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::unique_ptr<SummaryWriter> writer_;
};

/// Every `every` epochs: the first `count` test images in a grid, each framed green when
/// predicted right and red when wrong, with a caption of the predicted class, or
/// "predicted/true" when wrong, in a small built-in digit font; written to
/// OUT/images/epoch_<E>.png and, when a TensorBoardHook is registered, as the image summary
/// test/predictions. Only for 1- or 3-channel images. Runs on rank 0.
class ImageGridHook : public Hook {
 public:
  ImageGridHook(int64_t every, int64_t count) : every_(every), count_(count) {}
  std::string name() const override { return "ImageGridHook"; }
  int priority() const override { return 75; }
  void after_epoch(Trainer& t) override;
  /// The file written last (empty: none yet).
  const std::string& last_file() const { return last_file_; }

 private:
  int64_t every_, count_;
  std::string last_file_;
};

/// OUT/last.ckpt every save_every iterations and after each epoch, the last
/// keep_checkpoints of those also as OUT/checkpoint_<iteration>.ckpt (older numbered
/// files removed), and OUT/best.safetensors (the weights) whenever test_acc improves.
class CheckpointHook : public Hook {
 public:
  std::string name() const override { return "CheckpointHook"; }
  int priority() const override { return 90; }
  void after_iteration(Trainer& t) override;
  void after_epoch(Trainer& t) override;
  /// Writes last.ckpt (+ the numbered copy); a collective.
  void checkpoint(Trainer& t, bool epoch_end);
};

}  // namespace ember::train
