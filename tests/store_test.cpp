// The rendezvous stores (dist/store.h): a TCP store served on an ephemeral port of
// 127.0.0.1 with clients on threads, and the file store. Timeouts are short; nothing here
// asserts on time, only on results and messages.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "dist/store.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ember;
using dist::FileStore;
using dist::TcpStore;
using dist::TcpStoreServer;

namespace {

TEST(TcpStore, SetGetAddCheckAcrossClients) {
  TcpStoreServer server(0);
  ASSERT_GT(server.port(), 0);
  TcpStore a("127.0.0.1", server.port(), 5), b("127.0.0.1", server.port(), 5);
  a.set("x", std::string("bytes\0with nul", 14));
  EXPECT_EQ(b.get("x"), std::string("bytes\0with nul", 14));
  EXPECT_TRUE(b.check({"x"}));
  EXPECT_FALSE(b.check({"x", "y"}));
  a.set("x", "again");  // overwrite
  EXPECT_EQ(b.get("x"), "again");
  EXPECT_EQ(a.add("n", 2), 2);
  EXPECT_EQ(b.add("n", 3), 5);
  EXPECT_EQ(a.get("n"), "5");
  EXPECT_EQ(a.add("n", 0), 5);
  std::string big(1 << 20, 'z');  // larger than one read
  a.set("big", big);
  EXPECT_EQ(b.get("big"), big);
}

TEST(TcpStore, WaitReturnsOnceAnotherClientSetsTheKeys) {
  TcpStoreServer server(0);
  TcpStore waiter("127.0.0.1", server.port(), 20);
  std::thread t([&] {
    TcpStore setter("127.0.0.1", server.port(), 20);
    setter.set("k1", "a");
    setter.set("k2", "b");
  });
  waiter.wait({"k1", "k2"});
  t.join();
  EXPECT_EQ(waiter.get("k2"), "b");
}

TEST(TcpStore, ConcurrentAddsFromManyClientsAreAtomic) {
  TcpStoreServer server(0);
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      TcpStore c("127.0.0.1", server.port(), 20);
      for (int j = 0; j < 50; ++j) c.add("count", 1);
    });
  for (auto& t : ts) t.join();
  TcpStore c("127.0.0.1", server.port(), 5);
  EXPECT_EQ(c.add("count", 0), 200);
}

TEST(TcpStore, AKeyThatNeverComesTimesOutNamingKeyAndAddress) {
  TcpStoreServer server(0);
  TcpStore c("127.0.0.1", server.port(), 0.3);
  c.set("here", "1");
  std::string addr = "127.0.0.1:" + std::to_string(server.port());
  try {
    c.wait({"here", "rank_1"});
    ADD_FAILURE() << "expected a timeout";
  } catch (const dist::TimeoutError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("TCP store at " + addr), std::string::npos) << m;
    EXPECT_NE(m.find("'rank_1'"), std::string::npos) << m;
    EXPECT_EQ(m.find("'here'"), std::string::npos) << "only the missing key is named: " << m;
  }
  EXPECT_ERROR(c.get("never"), "'never'");
  // The connection is still good after a timeout.
  EXPECT_EQ(c.get("here"), "1");
}

TEST(TcpStore, NoServerIsATimeoutNamingTheAddress) {
  int port = 0;
  {  // a port that nobody serves: taken from a server that is gone again
    TcpStoreServer s(0);
    port = s.port();
  }
  try {
    TcpStore c("127.0.0.1", port, 0.3);
    ADD_FAILURE() << "expected an error";
  } catch (const dist::TimeoutError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cannot reach the TCP store at 127.0.0.1:" + std::to_string(port)), std::string::npos) << m;
    EXPECT_NE(m.find("MASTER_ADDR"), std::string::npos) << m;
  }
  EXPECT_ERROR(TcpStore("no-such-host.invalid", port, 0.3), "no-such-host.invalid");
  EXPECT_ERROR(TcpStore("127.0.0.1", 70000, 0.3), "port 70000");
}

TEST(TcpStore, APortInUseIsAnErrorSayingSo) {
  TcpStoreServer first(0);
  EXPECT_ERROR(TcpStoreServer(first.port()), "Address already in use");
  EXPECT_ERROR(TcpStoreServer(first.port()), "--master-port");
}

TEST(TcpStore, TheServerEndingIsAnErrorInTheWaitingClient) {
  auto server = std::make_unique<TcpStoreServer>(0);
  TcpStore c("127.0.0.1", server->port(), 30);
  std::promise<void> saw_ready;
  std::thread t([&, seen = saw_ready.get_future()] {
    TcpStore probe("127.0.0.1", server->port(), 30);
    probe.set("ready", "1");
    // Only after the client has its answer (ending the server earlier would fail that wait
    // instead), and a moment later, so the client is usually inside its next wait: the
    // server goes away under a waiting client (or just before it waits: an error too).
    seen.wait();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    server.reset();
  });
  try {
    c.wait({"ready"});
  } catch (...) {
    saw_ready.set_value();
    t.join();
    throw;
  }
  saw_ready.set_value();
  EXPECT_ERROR(c.wait({"never"}), "TCP store at 127.0.0.1");
  t.join();
  EXPECT_ERROR(c.get("x"), "lost");
}

TEST(TcpStore, GarbageOnTheWireDropsOnlyThatClient) {
  TcpStoreServer server(0);
  TcpStore good("127.0.0.1", server.port(), 5);
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(server.port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    const char junk[] = "GET / HTTP/1.0\r\n\r\n";  // a length of ~1 GB: rejected
    ASSERT_GT(::send(fd, junk, sizeof junk, 0), 0);
    char buf[16];
    EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 0) << "the server closes it";
    ::close(fd);
  }
  good.set("still", "works");
  EXPECT_EQ(good.get("still"), "works");
}

TEST(LocalAddress, LoopbackAndRoutes) {
  EXPECT_EQ(dist::local_address_towards("127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(dist::local_address_towards("localhost"), "127.0.0.1");
}

// ---- the file store

fs::path store_file(const std::string& name) { return fs::path(test::scratch_dir("store_" + name)) / "rdzv"; }

TEST(FileStore, SetGetAddWaitAcrossOpeners) {
  fs::path p = store_file("basic");
  std::unique_ptr<FileStore> b;
  std::thread late([&] { b = std::make_unique<FileStore>(p.string(), false, 20); });  // waits for rank 0
  FileStore a(p.string(), true, 5);
  late.join();
  a.set("addr0", "hello");
  EXPECT_EQ(b->get("addr0"), "hello");
  a.set("addr0", "again");
  EXPECT_EQ(b->get("addr0"), "again");
  EXPECT_EQ(a.add("n", 4), 4);
  EXPECT_EQ(b->add("n", -1), 3);
  EXPECT_EQ(b->get("n"), "3");
  EXPECT_TRUE(a.check({"addr0", "n"}));
  EXPECT_FALSE(a.check({"addr0", "m"}));
  std::thread setter([&] { b->set("later", "x"); });
  a.wait({"later"});
  setter.join();
  a.remove();
  EXPECT_FALSE(fs::exists(p));
}

TEST(FileStore, ConcurrentAddsAreAtomic) {
  fs::path p = store_file("adds");
  FileStore a(p.string(), true, 5);
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      FileStore c(p.string(), false, 5);
      for (int j = 0; j < 25; ++j) c.add("count", 1);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(a.add("count", 0), 100);
}

TEST(FileStore, TimeoutsAndLeftoversAreClearErrors) {
  fs::path p = store_file("errors");
  EXPECT_ERROR(FileStore(p.string(), false, 0.2), "was not created by rank 0 within 0.2 s");
  {
    FileStore a(p.string(), true, 0.2);
    EXPECT_ERROR(a.wait({"rank_3"}), "file store " + p.string() + ": waited 0.2 s for key 'rank_3'");
  }
  // The file of a run that did not clean up: rank 0 refuses it, naming it.
  EXPECT_ERROR(FileStore(p.string(), true, 0.2), "rendezvous file " + p.string() + " already holds");
  fs::remove(p);
  std::ofstream(p.string()).close();  // an empty file is fine
  FileStore fresh(p.string(), true, 0.2);
  fresh.set("k", "v");
  EXPECT_EQ(fresh.get("k"), "v");
  EXPECT_ERROR(FileStore((p.parent_path() / "no" / "such" / "dir").string(), true, 0.2), "cannot create");
}

}  // namespace
