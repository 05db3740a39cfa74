#include "pool/backoff.hpp"

#include <gtest/gtest.h>

namespace pgvigil::pool {
namespace {

ReconnectSettings settings() {
  ReconnectSettings s;
  s.initial_delay = Milliseconds(100);
  s.max_delay = Milliseconds(3000);
  s.max_delay_while_clients_wait = Milliseconds(500);
  return s;
}

TEST(Backoff, EachDelayLiesBetweenHalfAndAllOfTheDoublingNominal) {
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    Backoff backoff(settings(), seed);
    std::int64_t nominal = 100;
    for (int attempt = 0; attempt < 10; ++attempt) {
      const auto delay = backoff.next_delay(false).count();
      EXPECT_GE(delay, nominal / 2) << "seed " << seed << " attempt " << attempt;
      EXPECT_LE(delay, nominal) << "seed " << seed << " attempt " << attempt;
      nominal = std::min<std::int64_t>(nominal * 2, 3000);
    }
  }
}

TEST(Backoff, NeverExceedsTheCapHoweverManyFailures) {
  Backoff backoff(settings(), 7);
  for (int attempt = 0; attempt < 1000; ++attempt) backoff.next_delay(false);
  EXPECT_LE(backoff.next_delay(false).count(), 3000);
  EXPECT_GE(backoff.next_delay(false).count(), 1500);
  EXPECT_EQ(backoff.failures(), 1002);
}

TEST(Backoff, WaitingClientsCapTheDelay) {
  Backoff backoff(settings(), 3);
  for (int attempt = 0; attempt < 20; ++attempt) {
    EXPECT_LE(backoff.next_delay(true).count(), 500);
  }
}

TEST(Backoff, ResetStartsOverFromTheInitialDelay) {
  Backoff backoff(settings(), 11);
  for (int attempt = 0; attempt < 8; ++attempt) backoff.next_delay(false);
  backoff.reset();
  EXPECT_EQ(backoff.failures(), 0);
  EXPECT_LE(backoff.next_delay(false).count(), 100);
}

TEST(Backoff, JitterSpreadsPoolsThatFailedTogether) {
  // Pools that lose the server at the same moment must not retry at the same moment.
  std::set<std::int64_t> delays;
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    Backoff backoff(settings(), seed);
    for (int attempt = 0; attempt < 5; ++attempt) backoff.next_delay(false);
    delays.insert(backoff.next_delay(false).count());
  }
  EXPECT_GT(delays.size(), 10u);
}

}  // namespace
}  // namespace pgvigil::pool
