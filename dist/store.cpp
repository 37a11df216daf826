// The TCP and file rendezvous stores (Note [Stores] in dist/store.h).
//
// Wire format of the TCP store: every message is a u32 length (little endian, the bytes
// after it), then a request (u8 command, fields) or a reply (u8 status, fields). Strings are
// a u32 length and the bytes; numbers are 8-byte little-endian integers. The server answers
// requests in the order they came from one client; a WAIT is answered when its keys are
// there or when its deadline passes, meanwhile the server serves the others.
#include "dist/store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <thread>

namespace ember::dist {

namespace {

using Clock = std::chrono::steady_clock;

enum Cmd : uint8_t { kSet = 1, kGet = 2, kAdd = 3, kCheck = 4, kWait = 5 };
enum Status : uint8_t { kOk = 0, kMissing = 1, kTimeout = 2 };
constexpr uint32_t kMaxMessage = 64u << 20;  // a larger length is not one of our clients

Clock::time_point deadline_in(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

int ms_until(Clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return ms <= 0 ? 0 : int(std::min<int64_t>(ms, 1 << 30));
}

std::string secs(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

std::string errno_text(int e) { return std::strerror(e); }

std::string quoted_keys(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "'" : ", '") + k + "'";
  return out;
}

// ---- encoding
void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}
void put_i64(std::string& s, int64_t v) {
  uint64_t u = uint64_t(v);
  for (int i = 0; i < 8; ++i) s.push_back(char((u >> (8 * i)) & 0xff));
}
void put_str(std::string& s, const std::string& v) {
  put_u32(s, uint32_t(v.size()));
  s += v;
}
std::string framed(const std::string& body) {
  std::string s;
  put_u32(s, uint32_t(body.size()));
  return s + body;
}

/// Reads fields from a message body; any overrun sets `bad`.
struct Reader {
  const std::string& s;
  size_t pos = 0;
  bool bad = false;
  uint32_t u32() {
    if (pos + 4 > s.size()) return bad = true, 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(s[pos + size_t(i)])) << (8 * i);
    pos += 4;
    return v;
  }
  int64_t i64() {
    if (pos + 8 > s.size()) return bad = true, 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(uint8_t(s[pos + size_t(i)])) << (8 * i);
    pos += 8;
    return int64_t(v);
  }
  std::string str() {
    uint32_t n = u32();
    if (bad || pos + n > s.size()) return bad = true, std::string();
    std::string v = s.substr(pos, n);
    pos += n;
    return v;
  }
  std::vector<std::string> keys() {
    uint32_t n = u32();
    std::vector<std::string> out;
    for (uint32_t i = 0; i < n && !bad; ++i) out.push_back(str());
    return out;
  }
};

int64_t parse_counter(const std::string& v) {
  try {
    return v.empty() ? 0 : std::stoll(v);
  } catch (const std::exception&) {
    return 0;
  }
}

/// Writes all of `data` (the fd may be non-blocking); false on error or past the deadline.
bool send_all(int fd, const std::string& data, Clock::time_point deadline) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      int ms = ms_until(deadline);
      if (ms == 0 || ::poll(&p, 1, ms) <= 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

// ============================================================ the server

namespace {

struct Client {
  int fd;
  std::string in;
};

struct PendingWait {
  int fd;
  std::vector<std::string> keys;
  Clock::time_point deadline;
};

}  // namespace

TcpStoreServer::TcpStoreServer(int port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw Error("dist: TCP store: socket() failed: " + errno_text(errno));
  int one = 1;
  // A restarted job can take the port of one that just ended (its sockets in TIME_WAIT).
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(uint16_t(port));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 1024) != 0) {
    int e = errno;
    close_fd(listen_fd_);
    throw Error("dist: cannot serve the TCP store on port " + std::to_string(port) + ": " + errno_text(e) +
                (e == EADDRINUSE ? " (another job or program uses it: pick another --master-port / MASTER_PORT)" : ""));
  }
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  if (::pipe2(wake_, O_CLOEXEC) != 0) {
    close_fd(listen_fd_);
    throw Error("dist: TCP store: pipe() failed: " + errno_text(errno));
  }
  thread_ = std::thread([this] { serve(); });
}

TcpStoreServer::~TcpStoreServer() {
  if (thread_.joinable()) {
    char c = 0;
    (void)!::write(wake_[1], &c, 1);
    thread_.join();
  }
  close_fd(listen_fd_);
  close_fd(wake_[0]);
  close_fd(wake_[1]);
}

void TcpStoreServer::serve() {
  std::map<std::string, std::string> data;
  std::list<Client> clients;
  std::list<PendingWait> waits;
  const auto reply_deadline = [] { return deadline_in(5.0); };

  auto missing = [&](const std::vector<std::string>& keys) {
    std::vector<std::string> out;
    for (const auto& k : keys)
      if (!data.count(k)) out.push_back(k);
    return out;
  };
  auto reply = [&](int fd, Status st, const std::string& body) {
    std::string m(1, char(st));
    m += body;
    send_all(fd, framed(m), reply_deadline());  // a client that cannot take it will see EOF
  };
  auto settle_waits = [&] {
    for (auto it = waits.begin(); it != waits.end();) {
      if (missing(it->keys).empty()) {
        reply(it->fd, kOk, "");
        it = waits.erase(it);
      } else {
        ++it;
      }
    }
  };
  // False: a malformed message; the client is dropped.
  auto handle = [&](int fd, const std::string& msg) {
    Reader r{msg};
    if (msg.empty()) return false;
    uint8_t cmd = uint8_t(msg[0]);
    r.pos = 1;
    switch (cmd) {
      case kSet: {
        std::string k = r.str(), v = r.str();
        if (r.bad) return false;
        data[k] = std::move(v);
        reply(fd, kOk, "");
        settle_waits();
        return true;
      }
      case kGet: {
        std::string k = r.str();
        if (r.bad) return false;
        auto it = data.find(k);
        if (it == data.end()) reply(fd, kMissing, "");
        else reply(fd, kOk, it->second);
        return true;
      }
      case kAdd: {
        std::string k = r.str();
        int64_t d = r.i64();
        if (r.bad) return false;
        int64_t v = parse_counter(data[k]) + d;
        data[k] = std::to_string(v);
        std::string body;
        put_i64(body, v);
        reply(fd, kOk, body);
        settle_waits();
        return true;
      }
      case kCheck: {
        auto keys = r.keys();
        if (r.bad) return false;
        reply(fd, kOk, std::string(1, char(missing(keys).empty() ? 1 : 0)));
        return true;
      }
      case kWait: {
        int64_t ms = r.i64();
        auto keys = r.keys();
        if (r.bad) return false;
        if (missing(keys).empty()) reply(fd, kOk, "");
        else waits.push_back({fd, std::move(keys), Clock::now() + std::chrono::milliseconds(std::max<int64_t>(ms, 0))});
        return true;
      }
      default: return false;
    }
  };

  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& c : clients) fds.push_back({c.fd, POLLIN, 0});
    int timeout = -1;
    for (const auto& w : waits) timeout = timeout < 0 ? ms_until(w.deadline) : std::min(timeout, ms_until(w.deadline));
    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents) break;
    // Waits past their deadline: TIMEOUT with the keys still missing.
    for (auto it = waits.begin(); it != waits.end();) {
      if (Clock::now() >= it->deadline) {
        std::string body;
        for (const auto& k : missing(it->keys)) put_str(body, k);
        reply(it->fd, kTimeout, body);
        it = waits.erase(it);
      } else {
        ++it;
      }
    }
    if (n <= 0) continue;
    if (fds[1].revents & POLLIN) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c >= 0) {
        int one = 1;
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        clients.push_back({c, {}});
      }
    }
    size_t i = 2;
    for (auto it = clients.begin(); it != clients.end(); ++i) {
      bool drop = false;
      if (i < fds.size() && fds[i].fd == it->fd && fds[i].revents) {
        char buf[65536];
        ssize_t got = ::recv(it->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) drop = true;
        if (got > 0) it->in.append(buf, size_t(got));
        while (!drop && it->in.size() >= 4) {
          Reader r{it->in};
          uint32_t len = r.u32();
          if (len > kMaxMessage) {
            drop = true;
            break;
          }
          if (it->in.size() < 4 + size_t(len)) break;
          std::string msg = it->in.substr(4, len);
          it->in.erase(0, 4 + size_t(len));
          if (!handle(it->fd, msg)) drop = true;
        }
      }
      if (drop) {
        int fd = it->fd;
        waits.remove_if([fd](const PendingWait& w) { return w.fd == fd; });
        ::close(fd);
        it = clients.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : clients) ::close(c.fd);
}

// ============================================================ the client

struct TcpStore::Reply {
  Status status;
  std::string body;
};

TcpStore::TcpStore(const std::string& host, int port, double timeout_seconds)
    : Store(timeout_seconds), host_(host), port_(port), mu_(std::make_unique<std::mutex>()) {
  if (port <= 0 || port > 65535)
    throw Error("dist: TCP store: port " + std::to_string(port) + " is not a TCP port (1-65535)");
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || !res)
    throw Error("dist: cannot resolve the address of the TCP store '" + host + "' (MASTER_ADDR / --master-addr): " +
                ::gai_strerror(rc));
  sockaddr_in addr;
  std::memcpy(&addr, res->ai_addr, sizeof addr);
  ::freeaddrinfo(res);

  // The server may not listen yet (it starts with rank 0 / node 0): retry until the deadline.
  const auto deadline = deadline_in(timeout_seconds);
  std::string last = "no attempt";
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw Error("dist: TCP store: socket() failed: " + errno_text(errno));
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    int err = r == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int ms = std::max(1, std::min(ms_until(deadline), 2000));
      if (::poll(&p, 1, ms) == 1) {
        socklen_t l = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
      } else {
        err = ETIMEDOUT;
      }
    }
    if (err == 0) {
      fd_ = fd;
      break;
    }
    ::close(fd);
    last = errno_text(err);
    if (Clock::now() >= deadline)
      throw TimeoutError("dist: cannot reach the TCP store at " + host_ + ":" + std::to_string(port_) + " within " +
                         secs(timeout_seconds) + " s (last error: " + last +
                         "): is node 0 (rank 0) running, and do MASTER_ADDR and MASTER_PORT (--master-addr, "
                         "--master-port) name it?");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

TcpStore::~TcpStore() { close_fd(fd_); }

std::string TcpStore::where() const { return "TCP store at " + host_ + ":" + std::to_string(port_); }

TcpStore::Reply TcpStore::call(const std::string& request, const std::string& key, double seconds) {
  std::lock_guard<std::mutex> lock(*mu_);
  const auto deadline = deadline_in(seconds);
  auto lost = [&](const std::string& why) {
    return Error("dist: " + where() + ": " + why + " during a request for key '" + key +
                 "' (the process serving the store, node 0's launcher or rank 0, ended?)");
  };
  if (fd_ < 0) throw lost("the connection was lost earlier");
  if (!send_all(fd_, framed(request), deadline)) {
    close_fd(fd_);
    throw lost("sending failed");
  }
  std::string in;
  uint32_t want = 0;
  bool have_len = false;
  for (;;) {
    if (!have_len && in.size() >= 4) {
      Reader r{in};
      want = r.u32();
      have_len = true;
      if (want == 0 || want > kMaxMessage) {
        close_fd(fd_);
        throw lost("a malformed reply");
      }
    }
    if (have_len && in.size() >= 4 + size_t(want)) break;
    pollfd p{fd_, POLLIN, 0};
    int ms = ms_until(deadline);
    int n = ms == 0 ? 0 : ::poll(&p, 1, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close_fd(fd_);  // a late reply would be read as the next one's
      throw TimeoutError("dist: " + where() + ": no reply within " + secs(seconds) + " s to a request for key '" +
                         key + "'");
    }
    char buf[65536];
    ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      close_fd(fd_);
      throw lost("the connection was closed");
    }
    in.append(buf, size_t(got));
  }
  return Reply{Status(uint8_t(in[4])), in.substr(5, want - 1)};
}

void TcpStore::set(const std::string& key, const std::string& value) {
  std::string m(1, char(kSet));
  put_str(m, key);
  put_str(m, value);
  call(m, key, timeout_);
}

std::string TcpStore::get(const std::string& key) {
  wait({key});
  std::string m(1, char(kGet));
  put_str(m, key);
  Reply r = call(m, key, timeout_);
  if (r.status != kOk) throw Error("dist: " + where() + ": key '" + key + "' is missing");
  return r.body;
}

int64_t TcpStore::add(const std::string& key, int64_t delta) {
  std::string m(1, char(kAdd));
  put_str(m, key);
  put_i64(m, delta);
  Reply r = call(m, key, timeout_);
  Reader rd{r.body};
  return rd.i64();
}

bool TcpStore::check(const std::vector<std::string>& keys) {
  std::string m(1, char(kCheck));
  put_u32(m, uint32_t(keys.size()));
  for (const auto& k : keys) put_str(m, k);
  Reply r = call(m, keys.empty() ? "" : keys[0], timeout_);
  return !r.body.empty() && r.body[0] == 1;
}

void TcpStore::wait(const std::vector<std::string>& keys, double timeout_seconds) {
  if (keys.empty()) return;
  double t = timeout_seconds > 0 ? timeout_seconds : timeout_;
  std::string m(1, char(kWait));
  put_i64(m, int64_t(t * 1000));
  put_u32(m, uint32_t(keys.size()));
  for (const auto& k : keys) put_str(m, k);
  // The server answers at the deadline; the margin covers a slow network, not a dead server
  // (that closes the connection).
  Reply r = call(m, quoted_keys(keys), t + 10);
  if (r.status == kOk) return;
  Reader rd{r.body};
  std::vector<std::string> still;
  while (rd.pos < r.body.size() && !rd.bad) still.push_back(rd.str());
  throw TimeoutError("dist: " + where() + ": waited " + secs(t) + " s for key" + (still.size() > 1 ? "s " : " ") +
                     quoted_keys(still) + ", which no process set (a rank that never arrived or died?)");
}

// ============================================================ the file store

namespace {

constexpr const char* kFileHeader = "__ember_file_store__";

}  // namespace

// fcntl locks exclude processes, not the threads of one process (and closing any descriptor
// of the file drops them all): within a process, this mutex does.
static std::mutex g_file_store_mu;

/// fcntl record lock on the whole file (honoured over NFS, unlike flock on some systems).
struct FileStore::Lock {
  Lock(int fd, bool write, const std::string& path) : guard_(g_file_store_mu), fd_(fd) {
    struct flock l{};
    l.l_type = short(write ? F_WRLCK : F_RDLCK);
    l.l_whence = SEEK_SET;
    while (::fcntl(fd, F_SETLKW, &l) != 0) {
      if (errno == EINTR) continue;
      throw Error("dist: file store " + path + ": cannot lock the file: " + errno_text(errno));
    }
  }
  ~Lock() {
    struct flock l{};
    l.l_type = F_UNLCK;
    l.l_whence = SEEK_SET;
    ::fcntl(fd_, F_SETLK, &l);
  }
  std::lock_guard<std::mutex> guard_;
  int fd_;
};

FileStore::FileStore(const std::string& path, bool create, double timeout_seconds)
    : Store(timeout_seconds), path_(path) {
  if (create) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno == EEXIST) {
      fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      struct stat st{};
      if (fd_ >= 0 && ::fstat(fd_, &st) == 0 && st.st_size > 0) {
        close_fd(fd_);
        throw Error("dist: the rendezvous file " + path + " already holds " + std::to_string(st.st_size) +
                    " bytes, left by an earlier run: delete it (no run may be using it) or pass another "
                    "--rdzv-file");
      }
    }
    if (fd_ < 0)
      throw Error("dist: cannot create the rendezvous file " + path + ": " + errno_text(errno) +
                  " (--rdzv-file must be on a file system every node can write)");
    append(kFileHeader, "1");
    return;
  }
  // The others wait for the file and for its creator's header: an empty file that someone
  // touched must not be written before rank 0 looked at it.
  const auto deadline = deadline_in(timeout_seconds);
  for (;;) {
    if (fd_ < 0) fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0 && errno != ENOENT)
      throw Error("dist: cannot open the rendezvous file " + path + ": " + errno_text(errno));
    if (fd_ >= 0 && check({kFileHeader})) return;
    if (Clock::now() >= deadline) {
      close_fd(fd_);
      throw TimeoutError("dist: the rendezvous file " + path + " was not created by rank 0 within " +
                         secs(timeout_seconds) + " s: is rank 0 running, with the same --rdzv-file on a file "
                         "system this node shares?");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

FileStore::~FileStore() {
  std::lock_guard<std::mutex> lock(g_file_store_mu);
  close_fd(fd_);
}

void FileStore::remove() { ::unlink(path_.c_str()); }

std::vector<std::pair<std::string, std::string>> FileStore::read_all() const {
  Lock lock(fd_, false, path_);
  std::string all;
  char buf[65536];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd_, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("dist: file store " + path_ + ": read failed: " + errno_text(errno));
    if (n == 0) break;
    all.append(buf, size_t(n));
    off += n;
  }
  std::vector<std::pair<std::string, std::string>> out;
  Reader r{all};
  while (r.pos < all.size()) {
    std::string k = r.str(), v = r.str();
    if (r.bad) break;  // a torn record (a writer killed mid-write) ends the log
    out.emplace_back(std::move(k), std::move(v));
  }
  return out;
}

void FileStore::append(const std::string& key, const std::string& value) {
  std::string rec;
  put_str(rec, key);
  put_str(rec, value);
  Lock lock(fd_, true, path_);
  off_t end = ::lseek(fd_, 0, SEEK_END);
  size_t off = 0;
  while (off < rec.size()) {
    ssize_t n = ::pwrite(fd_, rec.data() + off, rec.size() - off, end + off_t(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error("dist: file store " + path_ + ": write failed: " + errno_text(errno));
    off += size_t(n);
  }
  ::fsync(fd_);  // other nodes read through their own caches
}

void FileStore::set(const std::string& key, const std::string& value) { append(key, value); }

std::string FileStore::get(const std::string& key) {
  wait({key});
  std::string v;
  for (auto& [k, val] : read_all())
    if (k == key) v = val;  // the last record wins
  return v;
}

int64_t FileStore::add(const std::string& key, int64_t delta) {
  // Read and append under one write lock: two adders must not both read the old value.
  std::string rec;
  Lock lock(fd_, true, path_);
  int64_t v = 0;
  {
    std::string all;
    char buf[65536];
    off_t off = 0;
    for (;;) {
      ssize_t n = ::pread(fd_, buf, sizeof buf, off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      all.append(buf, size_t(n));
      off += n;
    }
    Reader r{all};
    while (r.pos < all.size()) {
      std::string k = r.str(), val = r.str();
      if (r.bad) break;
      if (k == key) v = parse_counter(val);
    }
    v += delta;
    put_str(rec, key);
    put_str(rec, std::to_string(v));
    size_t w = 0;
    while (w < rec.size()) {
      ssize_t n = ::pwrite(fd_, rec.data() + w, rec.size() - w, off + off_t(w));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw Error("dist: file store " + path_ + ": write failed: " + errno_text(errno));
      w += size_t(n);
    }
  }
  ::fsync(fd_);
  return v;
}

bool FileStore::check(const std::vector<std::string>& keys) {
  auto all = read_all();
  for (const auto& k : keys)
    if (std::none_of(all.begin(), all.end(), [&](const auto& kv) { return kv.first == k; })) return false;
  return true;
}

void FileStore::wait(const std::vector<std::string>& keys, double timeout_seconds) {
  double t = timeout_seconds > 0 ? timeout_seconds : timeout_;
  const auto deadline = deadline_in(t);
  auto pause = std::chrono::milliseconds(2);
  for (;;) {
    auto all = read_all();
    std::vector<std::string> still;
    for (const auto& k : keys)
      if (std::none_of(all.begin(), all.end(), [&](const auto& kv) { return kv.first == k; })) still.push_back(k);
    if (still.empty()) return;
    if (Clock::now() >= deadline)
      throw TimeoutError("dist: " + where() + ": waited " + secs(t) + " s for key" + (still.size() > 1 ? "s " : " ") +
                         quoted_keys(still) + ", which no process set (a rank that never arrived or died?)");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

// ============================================================ addresses

std::string local_address_towards(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), "9", &hints, &res) != 0 || !res) return "";
  sockaddr_in to;
  std::memcpy(&to, res->ai_addr, sizeof to);
  ::freeaddrinfo(res);
  if ((ntohl(to.sin_addr.s_addr) >> 24) == 127) return "127.0.0.1";
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  std::string out;
  sockaddr_in me{};
  socklen_t len = sizeof me;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len) == 0) {
    char buf[INET_ADDRSTRLEN];
    if (::inet_ntop(AF_INET, &me.sin_addr, buf, sizeof buf)) out = buf;
  }
  ::close(fd);
  return out;
}

}  // namespace ember::dist
