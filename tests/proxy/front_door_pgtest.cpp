// What a hostile client can learn or block before it authenticates, through the real pgvigil
// binary: SCRAM shows a known user (plain password in the users file) and an unknown one the same
// way, by salt and by time, and never runs PBKDF2 for a login; silent sockets cannot take the room
// of authenticated clients.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/proxy/raw_pg_connection.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using std::chrono::microseconds;

class FrontDoorPgTest : public ProxyPgFixture {};

// What the server's first SCRAM message said, and how long the login took to reach it.
struct ScramFirst {
  std::string salt;
  std::string iterations;
  microseconds elapsed{0};
};

std::string attribute(const std::string& message, char name) {
  const std::string key = std::string(1, name) + "=";
  auto at = message.find(key);
  if (at == std::string::npos) return "";
  if (at != 0 && message[at - 1] != ',') at = message.find("," + key) + 1;
  const auto end = message.find(',', at);
  return message.substr(at + 2, end == std::string::npos ? std::string::npos : end - at - 2);
}

// Starts a SCRAM login as `user` up to the server's first message (AuthenticationSASLContinue),
// timed from the StartupMessage; the exchange is abandoned there.
ScramFirst scram_first(std::uint16_t port, const std::string& user) {
  RawPgConnection raw(port);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(raw.send(startup_packet({{"user", user}, {"database", "app"}})));
  const auto sasl = raw.read_until('R', seconds(5));
  EXPECT_TRUE(sasl && sasl->payload.size() > 4 && sasl->payload[3] == 10)
      << "no AuthenticationSASL";
  const std::string client_first = "n,,n=,r=fyko+d2lbbFgONRv9qkxdawL";
  const std::string mechanism = "SCRAM-SHA-256";
  EXPECT_TRUE(raw.send(typed_message(
      'p', mechanism + std::string(1, '\0') +
               be32(static_cast<std::uint32_t>(client_first.size())) + client_first)));
  const auto next = raw.read_until('R', seconds(5));
  ScramFirst first;
  first.elapsed =
      std::chrono::duration_cast<microseconds>(std::chrono::steady_clock::now() - start);
  EXPECT_TRUE(next && next->payload.size() > 4 && next->payload[3] == 11)
      << "no AuthenticationSASLContinue";
  if (!next) return first;
  const std::string server_first = next->payload.substr(4);
  first.salt = attribute(server_first, 's');
  first.iterations = attribute(server_first, 'i');
  return first;
}

microseconds median(std::vector<microseconds> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

TEST_F(FrontDoorPgTest, ScramShowsKnownAndUnknownUsersAlike) {
  // alice has a plain password: before, each attempt drew a new salt and ran PBKDF2 (1.16 ms).
  start_daemon({{{"app"}}, "scram-sha-256", "\"alice\" \"pencil\"\n"});

  const auto known = scram_first(port_, "alice");
  const auto unknown = scram_first(port_, "nobody");
  ASSERT_FALSE(known.salt.empty());
  ASSERT_FALSE(unknown.salt.empty());
  EXPECT_EQ(known.salt.size(), unknown.salt.size());
  EXPECT_EQ(known.iterations, unknown.iterations);
  EXPECT_EQ(scram_first(port_, "alice").salt, known.salt) << "a known user's salt changes";
  EXPECT_EQ(scram_first(port_, "nobody").salt, unknown.salt) << "an unknown user's salt changes";

  // By time: medians of interleaved logins within 20 %. Machine noise can push one sample of
  // medians over; a real difference (PBKDF2 for one kind, 20 times the cost) fails all three.
  double best_ratio = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<microseconds> known_times;
    std::vector<microseconds> unknown_times;
    for (int i = 0; i < 101; ++i) {
      known_times.push_back(scram_first(port_, "alice").elapsed);
      unknown_times.push_back(scram_first(port_, "nobody").elapsed);
    }
    const double ratio = static_cast<double>(median(known_times).count()) /
                         static_cast<double>(std::max<long>(1, median(unknown_times).count()));
    std::cout << "SCRAM login to server-first, median known/unknown: "
              << median(known_times).count() << " us / " << median(unknown_times).count()
              << " us = " << ratio << "\n";
    if (std::abs(ratio - best_ratio) > std::abs(ratio - 1.0) || best_ratio == 0) best_ratio = ratio;
    if (ratio >= 0.8 && ratio <= 1.25) break;
  }
  EXPECT_GE(best_ratio, 0.8);
  EXPECT_LE(best_ratio, 1.25);
}

TEST_F(FrontDoorPgTest, SilentSocketsDoNotKeepAnAuthenticatedClientOut) {
  start_daemon({{{"app"}},
                "scram-sha-256",
                "\"alice\" \"pencil\"\n",
                "max_client_connections: 300, max_startup_connections: 100, "
                "max_startup_per_address: 50"});
  // 500 sockets that send the first byte of a startup packet and no more, from the address the
  // real client uses too. (A socket that sends nothing stays with the kernel: listen.defer_accept.)
  std::vector<std::unique_ptr<RawPgConnection>> silent;
  for (int i = 0; i < 500; ++i) {
    silent.push_back(std::make_unique<RawPgConnection>(port_));
    ASSERT_TRUE(silent.back()->send(std::string(1, '\0')));
  }
  // The first ones have been pushed out to make room for later ones: told 53300 and closed.
  const auto pushed = silent.front()->read_until('E', seconds(10));
  ASSERT_TRUE(pushed) << "the oldest silent socket was not pushed out";
  EXPECT_EQ(error_fields(pushed->payload)['C'], "53300");

  const auto ran =
      run_shell("PGPASSWORD=pencil psql -X -A -t -v ON_ERROR_STOP=1 'host=127.0.0.1 port=" +
                std::to_string(port_) +
                " dbname=app user=alice sslmode=disable connect_timeout=5' -c 'SELECT 7 * 6' 2>&1");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_TRUE(contains(ran.output, "42")) << ran.output;
  // 50 silent sockets of that address stay in startup; the other 450 were pushed out, each told
  // 53300 (counted before any database: pgvigil_client_startup_errors_total, class 53).
  double pushed_out = 0;
  wait_until(
      [&] {
        pushed_out = metric("pgvigil_client_startup_errors_total", {{"class", "53"}});
        return pushed_out >= 450;
      },
      seconds(10));
  EXPECT_GE(pushed_out, 450);
}

}  // namespace
}  // namespace pgvigil::testing
