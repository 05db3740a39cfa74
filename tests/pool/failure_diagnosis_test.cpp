// Why a server connection died (pool/failure_diagnosis): each verdict from the evidence the
// kernel, the socket and libpq leave, as measured on a real teardown (see tcp_info.hpp).
#include "pool/failure_diagnosis.hpp"

#include <gtest/gtest.h>

#include <cerrno>

namespace pgvigil::pool {
namespace {

using namespace std::chrono_literals;

// A connection created 60 s ago that last answered 20 s ago, with the shipped keep-alive
// (5 s + 2 s x 3 = 11 s, user_timeout 11 s).
FailureEvidence evidence(bool data_in_flight) {
  FailureEvidence e;
  e.context = "relaying";
  e.data_in_flight = data_in_flight;
  e.now = Clock::now();
  e.created_at = e.now - 60s;
  e.last_alive = e.now - 20s;
  e.libpq_message = "server closed the connection unexpectedly";
  return e;
}

probes::TcpSnapshot torn_down(std::uint32_t probes, std::uint32_t retransmits,
                              std::chrono::milliseconds silent) {
  probes::TcpSnapshot tcp;
  tcp.closed = true;
  tcp.keepalive_probes = probes;
  tcp.retransmits = retransmits;
  tcp.since_last_ack_received = silent;
  return tcp;
}

TEST(FailureDiagnosis, KeepAliveProbesWithoutRetransmissionsAreAKeepAliveTimeout) {
  auto e = evidence(/*data_in_flight=*/true);
  e.tcp = torn_down(3, 0, 11050ms);
  const auto death = diagnose(e);
  EXPECT_EQ(death.reason, EvictionReason::keepalive_timeout);
  EXPECT_NE(death.detail.find("3 keep-alive probes"), std::string::npos) << death.detail;
  // The last sign of life is the kernel's last ACK, not pgvigil's last answer.
  EXPECT_EQ(death.last_sign_of_life, e.now - 11050ms);
}

TEST(FailureDiagnosis, RetransmissionsWithoutProbesAreAUserTimeout) {
  auto e = evidence(/*data_in_flight=*/false);
  e.tcp = torn_down(0, 6, 11000ms);
  EXPECT_EQ(diagnose(e).reason, EvictionReason::user_timeout);
}

TEST(FailureDiagnosis, AResetAfterAShortSilenceIsAClose) {
  auto e = evidence(true);
  e.tcp = torn_down(0, 2, 300ms);
  e.libpq_message = "connection reset by peer";
  EXPECT_EQ(diagnose(e).reason, EvictionReason::server_closed);
}

TEST(FailureDiagnosis, ATimedOutSocketErrorWithoutKernelCountersFollowsWhatWasInFlight) {
  auto e = evidence(true);
  e.pending_error = ETIMEDOUT;
  EXPECT_EQ(diagnose(e).reason, EvictionReason::user_timeout);
  e.data_in_flight = false;
  EXPECT_EQ(diagnose(e).reason, EvictionReason::keepalive_timeout);
  // Without TCP_INFO (a Unix socket, or libpq already closed it) the last sign of life is
  // pgvigil's last answer.
  EXPECT_EQ(diagnose(e).last_sign_of_life, e.last_alive);
}

TEST(FailureDiagnosis, TheServersFatalExplainsAnOrdinaryClose) {
  auto e = evidence(false);
  e.server_fatal = "FATAL 57P01: terminating connection due to administrator command";
  const auto death = diagnose(e);
  EXPECT_EQ(death.reason, EvictionReason::server_error);
  EXPECT_EQ(death.detail, *e.server_fatal);
  EXPECT_EQ(death.last_sign_of_life, e.now);
}

TEST(FailureDiagnosis, AKernelTimeoutBeatsAFatalAndAnAckBeforeTheConnectionIsIgnored) {
  auto e = evidence(true);
  e.server_fatal = "FATAL 57P01: terminating connection";
  e.tcp = torn_down(0, 5, 70s);  // never acknowledged since before the connection existed
  const auto death = diagnose(e);
  EXPECT_EQ(death.reason, EvictionReason::user_timeout);
  EXPECT_EQ(death.last_sign_of_life, e.last_alive);
}

TEST(FailureDiagnosis, AnOrdinaryCloseSaysWhatPgvigilWasDoing) {
  const auto death = diagnose(evidence(false));
  EXPECT_EQ(death.reason, EvictionReason::server_closed);
  EXPECT_EQ(death.detail, "relaying: server closed the connection unexpectedly");
}

TEST(FailureDiagnosis, ACloseOnlyTheRelaySawIsStillNamed) {
  auto e = evidence(true);
  e.libpq_message.clear();
  const auto death = diagnose(e);
  EXPECT_EQ(death.reason, EvictionReason::server_closed);
  EXPECT_EQ(death.detail, "relaying: the server closed the connection");
}

// PostgreSQL 14 and later tell a backend's client about an immediate shutdown or a crash with a
// WARNING, then close: on an idle connection that is as final as a FATAL. Other warnings, and
// errors with the same codes (an ERROR 57P01 is not sent on close), are not.
TEST(FailureDiagnosis, AWarningOfAnImmediateShutdownOrCrashAnnouncesTheClose) {
  EXPECT_TRUE(announces_close("FATAL", "57P01"));
  EXPECT_TRUE(announces_close("PANIC", "XX000"));
  EXPECT_TRUE(announces_close("WARNING", "57P01"));  // immediate shutdown (quickdie)
  EXPECT_TRUE(announces_close("WARNING", "57P02"));  // crash of another server process
  EXPECT_FALSE(announces_close("WARNING", "01000"));
  EXPECT_FALSE(announces_close("NOTICE", "57P01"));
  EXPECT_FALSE(announces_close("ERROR", "57P01"));
  EXPECT_FALSE(announces_close("WARNING", ""));
}

}  // namespace
}  // namespace pgvigil::pool
