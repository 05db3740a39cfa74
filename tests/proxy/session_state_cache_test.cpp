// The worker's cache of session-state scans of Parse texts (proxy/relay/session_state_cache):
// whatever texts come, in whatever order, it answers what scan_session_state answers.
#include "proxy/relay/session_state_cache.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgvigil::proxy::relay {
namespace {

bool same_state(const SessionState& a, const SessionState& b) {
  return a.pin == b.pin && a.resets_settings == b.resets_settings &&
         a.changes_settings == b.changes_settings;
}

// Texts that pin, change or reset settings, or leave nothing; some prefixes of others, some
// differing only in case or in one word.
std::vector<std::string> texts() {
  std::vector<std::string> all = {
      "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
      "SELECT abalance FROM pgbench_accounts WHERE aid = $1; LISTEN x",
      "SELECT pg_advisory_lock($1)",
      "SELECT pg_advisory_xact_lock($1)",
      "SET search_path TO app",
      "SET ROLE app",
      "set role app",
      "RESET ALL",
      "CREATE TEMP TABLE t (x int)",
      "CREATE TABLE t (x int)",
      "",
      "SELECT 1",
  };
  for (int i = 0; i < 300; ++i) {
    all.push_back("SELECT c" + std::to_string(i) + " FROM t WHERE k = $1" +
                  (i % 7 == 0 ? "; SET myapp.key = 1" : ""));
  }
  // Past the size the cache keeps: scanned every time, answered all the same.
  all.push_back("SELECT " + std::string(SessionStateCache::kMaxText, 'x') + "; LISTEN y");
  return all;
}

TEST(SessionStateCache, AnswersAsTheScanInAnyOrderAndAfterSlotsChangeHands) {
  SessionStateCache cache;
  const auto all = texts();
  // Three passes forward, one backward, then a stride: every slot is taken over many times,
  // and a text comes back after others took its slot.
  std::vector<std::size_t> order;
  for (int pass = 0; pass < 3; ++pass) {
    for (std::size_t i = 0; i < all.size(); ++i) order.push_back(i);
  }
  for (std::size_t i = all.size(); i-- > 0;) order.push_back(i);
  for (std::size_t i = 0; i < all.size() * 3; ++i) order.push_back(i * 37 % all.size());
  for (const auto i : order) {
    SCOPED_TRACE(all[i].substr(0, 60));
    ASSERT_TRUE(same_state(cache.scan(all[i]), scan_session_state(all[i])));
  }
}

TEST(SessionStateCache, ATextIsNotTakenForAnotherThatBeginsLikeIt) {
  SessionStateCache cache;
  const std::string plain = "SELECT 1";
  const std::string pinning = "SELECT 1; LISTEN x";
  EXPECT_FALSE(cache.scan(plain).pin);
  EXPECT_EQ(cache.scan(pinning).pin, PinCause::listen);
  // A view into a longer buffer, as the relay passes it: only the view's bytes count.
  EXPECT_FALSE(cache.scan(std::string_view(pinning).substr(0, plain.size())).pin);
  EXPECT_EQ(cache.scan(pinning).pin, PinCause::listen);
}

}  // namespace
}  // namespace pgvigil::proxy::relay
