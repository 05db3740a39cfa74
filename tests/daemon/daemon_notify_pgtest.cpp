// The systemd notify protocol against a real NOTIFY_SOCKET (a Unix datagram socket this test
// binds, as systemd would): READY=1, STATUS=, WATCHDOG=1 from every loop at half WATCHDOG_USEC,
// RELOADING=1 ... READY=1 around SIGHUP, STOPPING=1 at SIGTERM; and the second signal.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "tests/daemon/daemon_test_util.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Collects the datagrams sent to a bound Unix datagram socket, with their arrival times.
class NotifySocket {
 public:
  struct Message {
    Clock::time_point at;
    std::string text;
  };

  explicit NotifySocket(const std::filesystem::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("cannot bind " + path.string());
    }
    timeval timeout{0, 100000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    reader_ = std::thread([this] {
      char buffer[4096];
      while (!stop_) {
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) continue;
        std::lock_guard lock(mutex_);
        messages_.push_back({Clock::now(), std::string(buffer, static_cast<std::size_t>(n))});
      }
    });
  }
  ~NotifySocket() {
    stop_ = true;
    reader_.join();
    ::close(fd_);
  }

  std::vector<Message> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  // Index of the first message at or after `from` that contains needle, or -1.
  int find(const std::string& needle, std::size_t from = 0) const {
    const auto all = messages();
    for (std::size_t i = from; i < all.size(); ++i) {
      if (all[i].text.find(needle) != std::string::npos) return static_cast<int>(i);
    }
    return -1;
  }
  bool wait_for(const std::string& needle, std::size_t from, milliseconds timeout) const {
    return wait_until([&] { return find(needle, from) >= 0; }, timeout);
  }
  std::string dump() const {
    std::string out;
    for (const auto& message : messages()) out += "[" + message.text + "]\n";
    return out;
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread reader_;
  mutable std::mutex mutex_;
  std::vector<Message> messages_;
};

class NotifyPgTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pg_ = PgCluster::start_new(); }
  static void TearDownTestSuite() { pg_.reset(); }

  std::string config(const std::string& ready_when) const {
    return "workers: 3\n"
           "admin: {listen: \"127.0.0.1:" + std::to_string(admin_port_) + "\"}\n" +
           "listen: {address: \"127.0.0.1:" + std::to_string(listen_port_) + "\"}\n" +
           "systemd: {ready_when: " + ready_when + "}\n" +
           "databases:\n"
           "  app:\n"
           "    host: 127.0.0.1\n"
           "    port: " + std::to_string(pg_->port()) + "\n" +
           "    dbname: postgres\n"
           "    user: postgres\n"
           "    sslmode: disable\n"
           "    application_name: pgvigil-notify\n";
  }

  static std::unique_ptr<PgCluster> pg_;
  std::uint16_t admin_port_ = free_tcp_port();
  std::uint16_t listen_port_ = free_tcp_port();
};

std::unique_ptr<PgCluster> NotifyPgTest::pg_;

TEST_F(NotifyPgTest, ReadyStatusWatchdogReloadingStopping) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("pgvigil-notify-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  NotifySocket notify(dir / "notify.sock");
  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config("pools_healthy"), {},
                                     {{"NOTIFY_SOCKET", (dir / "notify.sock").string()},
                                      {"WATCHDOG_USEC", "400000"}});

  ASSERT_TRUE(notify.wait_for("READY=1", 0, seconds(15))) << notify.dump() << daemon->log_text();
  // pools_healthy: by READY=1, the pool has a healthy connection.
  EXPECT_GE(metric(admin_port_, "pgvigil_server_connections", {{"pool", "app"}, {"state", "idle"}})
                .value_or(0),
            1.0);
  ASSERT_TRUE(notify.wait_for("STATUS=app: 2 idle 0 busy", 0, seconds(5))) << notify.dump();

  // WATCHDOG=1 every 200 ms (half of 400 ms), from every one of the 3 loops.
  const auto window_start = Clock::now();
  std::this_thread::sleep_for(seconds(2));  // a rate over a fixed window: nothing to await
  int pings = 0;
  for (const auto& message : notify.messages()) {
    if (message.at >= window_start && message.at < window_start + seconds(2) &&
        message.text == "WATCHDOG=1") {
      ++pings;
    }
  }
  EXPECT_GE(pings, 3) << notify.dump();
  EXPECT_LE(pings, 12) << notify.dump();

  const std::size_t before_reload = notify.messages().size();
  ASSERT_TRUE(daemon->send_signal(SIGHUP));
  ASSERT_TRUE(notify.wait_for("RELOADING=1", before_reload, seconds(5))) << notify.dump();
  const int reloading = notify.find("RELOADING=1", before_reload);
  EXPECT_NE(notify.messages()[static_cast<std::size_t>(reloading)].text.find("MONOTONIC_USEC="),
            std::string::npos);
  EXPECT_TRUE(notify.wait_for("READY=1", static_cast<std::size_t>(reloading) + 1, seconds(5)))
      << notify.dump();

  const std::size_t before_stop = notify.messages().size();
  ASSERT_TRUE(daemon->send_signal(SIGTERM));
  EXPECT_TRUE(notify.wait_for("STOPPING=1", before_stop, seconds(5))) << notify.dump();
  EXPECT_EQ(daemon->wait_exit(seconds(5)), 0) << daemon->log_text();
  std::filesystem::remove_all(dir);
}

// The watchdog is systemd's to switch on: with WATCHDOG_USEC unset, or with WATCHDOG_PID naming
// another process (a watchdog meant for a parent or a sibling), pgvigil still notifies READY=1,
// STATUS= and STOPPING=1 on the socket, but never sends WATCHDOG=1.
TEST_F(NotifyPgTest, WatchdogPingsOnlyWhenTheWatchdogIsMeantForThisProcess) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("pgvigil-notify-off-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  struct Case {
    std::string name;
    std::vector<std::pair<std::string, std::string>> watchdog;
  };
  // A pid that is surely not pgvigil's: this test's own.
  const Case cases[] = {
      {"WATCHDOG_USEC unset", {}},
      {"WATCHDOG_PID names another process",
       {{"WATCHDOG_USEC", "400000"}, {"WATCHDOG_PID", std::to_string(::getpid())}}}};
  for (const auto& [name, watchdog] : cases) {
    SCOPED_TRACE(name);
    std::filesystem::remove(dir / "notify.sock");
    NotifySocket notify(dir / "notify.sock");
    auto environment = watchdog;
    environment.emplace_back("NOTIFY_SOCKET", (dir / "notify.sock").string());
    auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config("pools_healthy"), {}, environment);
    ASSERT_TRUE(notify.wait_for("READY=1", 0, seconds(15))) << notify.dump() << daemon->log_text();
    ASSERT_TRUE(notify.wait_for("STATUS=app: 2 idle 0 busy", 0, seconds(5))) << notify.dump();

    // Five periods of the 400 ms watchdog, which would have brought about ten pings: a window
    // for something that must not happen, so a fixed one.
    std::this_thread::sleep_for(seconds(2));
    EXPECT_EQ(notify.find("WATCHDOG=1"), -1) << notify.dump();
    EXPECT_EQ(daemon->log_text().find("systemd watchdog"), std::string::npos) << daemon->log_text();

    const std::size_t before_stop = notify.messages().size();
    ASSERT_TRUE(daemon->send_signal(SIGTERM));
    EXPECT_TRUE(notify.wait_for("STOPPING=1", before_stop, seconds(5))) << notify.dump();
    EXPECT_EQ(daemon->wait_exit(seconds(5)), 0) << daemon->log_text();
    EXPECT_EQ(notify.find("WATCHDOG=1"), -1) << notify.dump();
  }
  std::filesystem::remove_all(dir);
}

TEST_F(NotifyPgTest, SecondSigtermExitsAtOnce) {
  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config("listening"));
  ASSERT_TRUE(wait_until(
      [&] {
        return metric(admin_port_, "pgvigil_server_connections",
                      {{"pool", "app"}, {"state", "idle"}}) == 2.0;
      },
      seconds(15)))
      << daemon->log_text();
  // A client inside a transaction keeps the drain waiting (shutdown_timeout).
  auto client = connect_client(listen_port_, "app");
  ASSERT_EQ(PQstatus(client.get()), CONNECTION_OK) << PQerrorMessage(client.get());
  ASSERT_EQ(run(client.get(), "BEGIN"), "");

  ASSERT_TRUE(daemon->send_signal(SIGTERM));
  ASSERT_TRUE(daemon->wait_for_log("draining", seconds(5))) << daemon->log_text();
  ASSERT_TRUE(daemon->send_signal(SIGHUP));  // ignored during shutdown
  ASSERT_TRUE(daemon->wait_for_log("SIGHUP ignored", seconds(5))) << daemon->log_text();
  EXPECT_TRUE(daemon->running());

  const auto sent_at = Clock::now();
  ASSERT_TRUE(daemon->send_signal(SIGTERM));
  EXPECT_EQ(daemon->wait_exit(seconds(2)), 1) << daemon->log_text();
  EXPECT_LT(Clock::now() - sent_at, seconds(1));
  EXPECT_NE(daemon->log_text().find("received SIGTERM again"), std::string::npos)
      << daemon->log_text();
}

TEST_F(NotifyPgTest, SecondSigintExitsWith130) {
  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config("listening"));
  ASSERT_TRUE(wait_until(
      [&] {
        return metric(admin_port_, "pgvigil_server_connections",
                      {{"pool", "app"}, {"state", "idle"}}) == 2.0;
      },
      seconds(15)))
      << daemon->log_text();
  auto client = connect_client(listen_port_, "app");
  ASSERT_EQ(run(client.get(), "BEGIN"), "");
  ASSERT_TRUE(daemon->send_signal(SIGINT));
  ASSERT_TRUE(daemon->wait_for_log("draining", seconds(5))) << daemon->log_text();
  ASSERT_TRUE(daemon->send_signal(SIGINT));
  EXPECT_EQ(daemon->wait_exit(seconds(2)), 130) << daemon->log_text();
}

}  // namespace
}  // namespace pgvigil::testing
