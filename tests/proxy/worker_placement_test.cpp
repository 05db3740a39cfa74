// Where new clients go (listen.pack_until_busy): the rule on given loads, a thread's own CPU
// share as a worker measures it, and the kernel really steering a SO_REUSEPORT group's new
// connections to the socket the rule picked (two listening sockets on one loopback port).

#include "proxy/worker_placement.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "proxy/reuseport_steering.hpp"

namespace pgvigil::proxy {
namespace {

std::size_t choose(std::vector<double> busy, std::size_t current, double mark = 0.7) {
  return WorkerPlacement::choose(busy, current, mark);
}

TEST(WorkerPlacementTest, NewClientsFillTheFirstWorkerUntilItIsBusy) {
  EXPECT_EQ(choose({0.0, 0.0, 0.0}, 0), 0u);
  EXPECT_EQ(choose({0.69, 0.0, 0.0}, 0), 0u);
  EXPECT_EQ(choose({0.7, 0.0, 0.0}, 0), 1u);
  EXPECT_EQ(choose({0.9, 0.8, 0.1}, 0), 2u);
  EXPECT_EQ(choose({0.5}, 0), 0u);
}

TEST(WorkerPlacementTest, EveryWorkerBusyPicksTheLeastBusy) {
  EXPECT_EQ(choose({0.95, 0.75, 0.85}, 2), 1u);
  EXPECT_EQ(choose({1.0, 1.0}, 1), 0u);  // a tie: the first
}

TEST(WorkerPlacementTest, AnEarlierWorkerIsTakenBackOnlyWellBelowTheMark) {
  // 0.6 is below 0.7 but not below 0.7 * kReturnBelow: the target stays on worker 1, or the
  // next burst would push worker 0 over again and the target would flap.
  EXPECT_EQ(choose({0.6, 0.2}, 1), 1u);
  EXPECT_EQ(choose({0.7 * WorkerPlacement::kReturnBelow - 0.01, 0.2}, 1), 0u);
  // From a later target, the first worker well below wins over the target itself.
  EXPECT_EQ(choose({0.6, 0.1, 0.3}, 2), 1u);
}

TEST(WorkerPlacementTest, ZeroOrOneWorkerDoesNotPack) {
  EXPECT_FALSE(WorkerPlacement(4, 0.0).packs());
  EXPECT_FALSE(WorkerPlacement(1, 0.7).packs());
  WorkerPlacement packing(2, 0.7);
  EXPECT_TRUE(packing.packs());
  EXPECT_EQ(packing.target(), 0u);
  EXPECT_FALSE(packing.retarget());  // nothing measured yet: both idle
}

std::int64_t thread_cpu_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return now.tv_sec * 1'000'000'000LL + now.tv_nsec;
}

// Spends `ns` of the calling thread's own CPU, however long the machine makes that take, then
// has worker `worker` sample itself.
void spin_then_sample(WorkerPlacement& placement, std::size_t worker, std::int64_t ns) {
  const auto start = thread_cpu_ns();
  volatile std::uint64_t spin = 0;
  while (thread_cpu_ns() - start < ns) spin = spin + 1;
  placement.sample(worker);
}

TEST(WorkerPlacementTest, AWorkerMeasuresItsOwnThreadsCpuShare) {
  WorkerPlacement placement(2, 0.7);
  std::thread spinning([&] {
    placement.sample(0);
    spin_then_sample(placement, 0, 50'000'000);
  });
  std::thread sleeping([&] {
    placement.sample(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    placement.sample(1);
  });
  spinning.join();
  sleeping.join();
  EXPECT_GT(placement.busy(0), 0.0);
  EXPECT_LE(placement.busy(0), 1.0);
  EXPECT_LT(placement.busy(1), placement.busy(0) / 2) << placement.busy(0);
}

TEST(WorkerPlacementTest, MovesTheTargetWhenTheFirstWorkerIsBusy) {
  WorkerPlacement placement(2, 0.7);
  placement.publish(0, 0.8);
  placement.publish(1, 0.1);
  EXPECT_TRUE(placement.retarget());
  EXPECT_EQ(placement.target(), 1u);
  placement.publish(0, 0.6);  // under the mark, not well under it: the target stays
  EXPECT_FALSE(placement.retarget());
  placement.publish(0, 0.3);
  EXPECT_TRUE(placement.retarget());
  EXPECT_EQ(placement.target(), 0u);
}

bool anywhere(std::size_t) { return true; }

TEST(WorkerPlacementTest, ABusyWorkerMovesOneSessionPerSamplingPeriod) {
  WorkerPlacement placement(3, 0.7);
  EXPECT_FALSE(placement.move_target(0, anywhere));  // nothing measured yet
  placement.publish(0, 0.9);
  placement.publish(1, 0.1);
  placement.publish(2, 0.1);
  EXPECT_TRUE(placement.may_move_from(0));
  // The session's database has a shard on worker 2 only. A worker that cannot take it takes
  // no move either.
  const auto only_2 = [](std::size_t worker) { return worker == 2; };
  EXPECT_FALSE(placement.move_target(0, [](std::size_t) { return false; }));
  EXPECT_EQ(placement.move_target(0, only_2), std::optional<std::size_t>(2));
  // The period's move is taken: the next waits for worker 0's next sample.
  EXPECT_FALSE(placement.may_move_from(0));
  EXPECT_FALSE(placement.move_target(0, anywhere));
  placement.publish(0, 0.9);
  // Worker 2 was promised a session and has not measured itself since: it takes none yet,
  // though it is the least busy.
  placement.publish(1, 0.2);
  EXPECT_FALSE(placement.move_target(0, only_2));
  EXPECT_EQ(placement.move_target(0, anywhere), std::optional<std::size_t>(1));
  placement.publish(0, 0.9);
  placement.publish(2, 0.1);
  EXPECT_EQ(placement.move_target(0, only_2), std::optional<std::size_t>(2));
  // Only to a worker well below the mark, and not from one under it.
  placement.publish(0, 0.9);
  placement.publish(2, 0.6);
  EXPECT_FALSE(placement.move_target(0, only_2));
  placement.publish(1, 0.5);
  EXPECT_FALSE(placement.move_target(1, anywhere));
  // Nothing moves when packing is off.
  WorkerPlacement spreading(2, 0.0);
  spreading.publish(0, 1.0);
  EXPECT_FALSE(spreading.move_target(0, anywhere));
}

// A listening socket on 127.0.0.1:port in a SO_REUSEPORT group (port 0: a new one).
int reuseport_listener(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int on = 1;
  EXPECT_EQ(::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(::listen(fd, 64), 0);
  return fd;
}

std::uint16_t port_of(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

// Connects `clients` times and counts what each listening socket of the group can accept.
std::array<int, 2> connections_taken(const std::array<int, 2>& listeners, int clients) {
  std::vector<int> connected;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port_of(listeners[0]));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < clients; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    connected.push_back(fd);
  }
  // A connect returns once the client has sent its ACK; the kernel may queue the connection
  // for accepting a moment later on a loaded machine: accepted until all are in, or 5 s.
  std::array<int, 2> taken{0, 0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (taken[0] + taken[1] < clients && std::chrono::steady_clock::now() < deadline) {
    for (std::size_t index = 0; index < listeners.size(); ++index) {
      int accepted;
      while ((accepted = ::accept4(listeners[index], nullptr, nullptr, SOCK_CLOEXEC)) >= 0) {
        ++taken[index];
        ::close(accepted);
      }
    }
    if (taken[0] + taken[1] < clients) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int fd : connected) ::close(fd);
  return taken;
}

TEST(ReuseportSteeringTest, TheKernelHandsNewConnectionsToTheSteeredSocket) {
  std::array<int, 2> listeners{};
  listeners[0] = reuseport_listener(0);
  listeners[1] = reuseport_listener(port_of(listeners[0]));
  ASSERT_EQ(port_of(listeners[0]), port_of(listeners[1]));

  ASSERT_FALSE(steer_reuseport_group(listeners[0], 1));
  EXPECT_EQ(connections_taken(listeners, 16), (std::array<int, 2>{0, 16}));
  // Attached through either socket, the program is the group's.
  ASSERT_FALSE(steer_reuseport_group(listeners[1], 0));
  EXPECT_EQ(connections_taken(listeners, 16), (std::array<int, 2>{16, 0}));
  // An index past the group's end: the kernel's hash, every connection still taken.
  ASSERT_FALSE(steer_reuseport_group(listeners[0], 7));
  const auto spread = connections_taken(listeners, 16);
  EXPECT_EQ(spread[0] + spread[1], 16);
  for (int fd : listeners) ::close(fd);
}

}  // namespace
}  // namespace pgvigil::proxy
