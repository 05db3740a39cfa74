// Cancel keys (proxy/cancel_registry): drawn from the CSPRNG, unique among live sessions, and a
// key reaches its own session only.
#include "proxy/cancel_registry.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <set>
#include <vector>

namespace pgvigil::proxy {
namespace {

struct CountingTarget : CancelTarget {
  int cancels = 0;
  int shutdowns = 0;
  void request_cancel() override { ++cancels; }
  void request_shutdown(bool) override { ++shutdowns; }
};

TEST(CancelKeys, EveryBitOfBothHalvesVariesAndNoKeyRepeats) {
  // A key shows all its bits to the client that holds it, so no bit may be fixed or biased
  // (beyond the process id's sign bit and its lowest bit, which keep it a positive non-zero
  // pid): over 20,000 keys each free bit must be set in 45-55 % of them.
  constexpr int kKeys = 20000;
  std::array<int, 64> set_count{};
  std::set<std::uint64_t> seen;
  for (int i = 0; i < kKeys; ++i) {
    const auto key = random_cancel_key();
    ASSERT_TRUE(key.has_value());
    EXPECT_GT(static_cast<std::int32_t>(key->process_id), 0);
    EXPECT_TRUE(seen.insert(key->packed()).second) << "a key repeated after " << i;
    for (int bit = 0; bit < 64; ++bit) set_count[bit] += (key->packed() >> bit) & 1;
  }
  for (int bit = 0; bit < 64; ++bit) {
    if (bit == 63) {
      EXPECT_EQ(set_count[bit], 0) << "the process id must stay positive";
    } else if (bit == 32) {
      EXPECT_EQ(set_count[bit], kKeys) << "the process id must never be 0";
    } else {
      EXPECT_GT(set_count[bit], kKeys * 45 / 100) << "bit " << bit;
      EXPECT_LT(set_count[bit], kKeys * 55 / 100) << "bit " << bit;
    }
  }
}

TEST(CancelKeys, AForkedProcessDrawsOtherKeysThanItsParent) {
  // A worker or a restarted daemon forked from the same state must not repeat keys: the CSPRNG
  // reseeds on fork, a copied generator state would not, nor would a copy of the bytes a thread
  // drew ahead for its next keys. One key drawn before the fork leaves such bytes in the buffer.
  ASSERT_TRUE(random_cancel_key().has_value());
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::array<std::uint64_t, 8> keys{};
    for (auto& key : keys) key = random_cancel_key().value_or(CancelKey{}).packed();
    const auto written = ::write(pipe_fds[1], keys.data(), sizeof keys);
    ::_exit(written == sizeof keys ? 0 : 1);
  }
  std::array<std::uint64_t, 8> parent{};
  for (auto& key : parent) key = random_cancel_key().value_or(CancelKey{}).packed();
  std::array<std::uint64_t, 8> from_child{};
  ASSERT_EQ(::read(pipe_fds[0], from_child.data(), sizeof from_child),
            static_cast<ssize_t>(sizeof from_child));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  EXPECT_NE(parent, from_child);
  const std::set<std::uint64_t> all(parent.begin(), parent.end());
  for (auto key : from_child) EXPECT_FALSE(all.contains(key));
}

TEST(CancelRegistry, AKeyReachesItsOwnSessionOnlyAndNothingOnceRemoved) {
  CancelRegistry registry;
  auto first = std::make_shared<CountingTarget>();
  auto second = std::make_shared<CountingTarget>();
  const auto first_key = registry.add(first);
  const auto second_key = registry.add(second);
  ASSERT_TRUE(first_key && second_key);
  EXPECT_NE(first_key->packed(), second_key->packed());

  EXPECT_TRUE(registry.cancel(*first_key));
  EXPECT_EQ(first->cancels, 1);
  EXPECT_EQ(second->cancels, 0);

  // A forged key (the right process id, another secret) reaches nobody.
  EXPECT_FALSE(registry.cancel({first_key->process_id, first_key->secret ^ 1u}));
  EXPECT_EQ(first->cancels, 1);

  registry.remove(*first_key);
  EXPECT_FALSE(registry.cancel(*first_key));
  EXPECT_EQ(first->cancels, 1);

  registry.shut_down_all(false);
  EXPECT_EQ(first->shutdowns, 0);
  EXPECT_EQ(second->shutdowns, 1);
}

TEST(CancelRegistry, ASessionThatIsGoneIsNotReached) {
  CancelRegistry registry;
  auto target = std::make_shared<CountingTarget>();
  const auto key = registry.add(target);
  ASSERT_TRUE(key);
  target.reset();
  EXPECT_FALSE(registry.cancel(*key));
}

}  // namespace
}  // namespace pgvigil::proxy
