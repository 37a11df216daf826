#pragma once
// Rendezvous stores: a small key-value store that the processes of a job share before they
// have any other channel. The launch without MPI (Note [Launch] in dist/process_group.h)
// puts there what the transports need to connect (Gloo's addresses, NCCL's unique id).
//
// Note [Stores]: two kinds. The TCP store is served by one process (node 0's launcher, or
// rank 0) on MASTER_ADDR:MASTER_PORT; every process keeps one connection to it. `wait` is
// answered by the server when the keys are there or at the deadline, so a waiting client
// costs nothing. The file store is one append-only file on a file system every node sees
// (--rdzv-file): records are appended under an fcntl write lock (which NFS honours) and
// read back whole; waits poll the file. Values are bytes; `add` keeps its counter as
// decimal text (get() of a counter reads "3"). Every call has a deadline: an unreachable
// server, a key that never comes or a lost connection is a dist::Error (TimeoutError for
// timeouts) naming the key and where the store is, never a hang. The TCP store speaks IPv4
// (MASTER_ADDR a name or an IPv4 address); its protocol is ember's own, not PyTorch's.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dist/communicator.h"

namespace ember::dist {

class Store {
 public:
  explicit Store(double timeout_seconds) : timeout_(timeout_seconds) {}
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  virtual void set(const std::string& key, const std::string& value) = 0;
  /// Waits (up to the timeout) for `key`, then returns its value.
  virtual std::string get(const std::string& key) = 0;
  /// Adds `delta` to the counter `key` (0 when absent) and returns the new value.
  virtual int64_t add(const std::string& key, int64_t delta) = 0;
  /// Whether every key is present, without waiting.
  virtual bool check(const std::vector<std::string>& keys) = 0;
  /// Returns once every key is present; TimeoutError (naming the missing keys) after
  /// `timeout_seconds` (<= 0: the store's timeout).
  virtual void wait(const std::vector<std::string>& keys, double timeout_seconds = 0) = 0;
  /// "TCP store at 10.0.0.1:29500", "file store /shared/rdzv": for messages.
  virtual std::string where() const = 0;

  double timeout_seconds() const { return timeout_; }
  void set_timeout(double seconds) { timeout_ = seconds; }

 protected:
  double timeout_;
};

/// The server of a TCP store: a thread that accepts clients and answers them from memory.
/// Listens on every IPv4 interface at `port` (0: an ephemeral port, see port()).
class TcpStoreServer {
 public:
  explicit TcpStoreServer(int port);
  ~TcpStoreServer();  // stops the thread; clients then see their connection closed
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;
  int port() const { return port_; }

 private:
  void serve();
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe that ends serve()
  int port_ = 0;
  std::thread thread_;
};

/// A client of a TCP store at host:port. Connecting retries until the timeout (the server
/// may start after its clients). Thread-safe: calls are serialized on the connection.
class TcpStore : public Store {
 public:
  TcpStore(const std::string& host, int port, double timeout_seconds);
  ~TcpStore() override;

  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, double timeout_seconds = 0) override;
  std::string where() const override;

 private:
  struct Reply;
  Reply call(const std::string& request, const std::string& key, double seconds);
  std::string host_;
  int port_;
  int fd_ = -1;
  std::unique_ptr<std::mutex> mu_;
};

/// A store in one file on a shared file system. `create`: this process starts the store:
/// the file must not exist or be empty (a file left by an earlier run is an error naming
/// it); the others wait (up to the timeout) for it to appear.
class FileStore : public Store {
 public:
  FileStore(const std::string& path, bool create, double timeout_seconds);
  ~FileStore() override;

  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, double timeout_seconds = 0) override;
  std::string where() const override { return "file store " + path_; }
  /// Deletes the file (the last process of the job to leave calls it).
  void remove();

 private:
  struct Lock;
  std::vector<std::pair<std::string, std::string>> read_all() const;
  void append(const std::string& key, const std::string& value);
  std::string path_;
  int fd_ = -1;
};

/// The address of this machine's interface that routes to `host` (a UDP "connect" asks the
/// kernel, nothing is sent); "127.0.0.1" for a loopback host. Transports bind there so
/// that the other nodes can reach them.
std::string local_address_towards(const std::string& host);

}  // namespace ember::dist
