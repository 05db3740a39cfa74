#include "pool/failure_diagnosis.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pgvigil::pool {
namespace {

bool mentions_timeout(const std::string& text) {
  return text.find("timed out") != std::string::npos;
}

// The kernel's last ACK, from TCP_INFO; what pgvigil heard last when the kernel knows no better.
Clock::time_point last_kernel_ack(const FailureEvidence& evidence) {
  if (!evidence.tcp) return evidence.last_alive;
  const auto ack = evidence.now - evidence.tcp->since_last_ack_received;
  // A socket that never saw an ACK reports a meaningless age; keep what we know then.
  return ack > evidence.created_at ? std::max(ack, evidence.last_alive) : evidence.last_alive;
}

}  // namespace

bool announces_close(std::string_view severity, std::string_view sqlstate) {
  if (severity == "FATAL" || severity == "PANIC") return true;
  return severity == "WARNING" && (sqlstate == "57P01" || sqlstate == "57P02");
}

Death diagnose(const FailureEvidence& evidence) {
  std::string cause =
      evidence.pending_error != 0 ? std::strerror(evidence.pending_error) : evidence.libpq_message;
  // The relay reads the socket itself, so libpq has nothing to say of a close it did not see.
  if (cause.empty()) cause = "the server closed the connection";
  bool kernel_timeout = evidence.pending_error == ETIMEDOUT || mentions_timeout(cause);
  std::optional<EvictionReason> timer;
  if (evidence.tcp && evidence.tcp->closed) {
    const auto& tcp = *evidence.tcp;
    const auto& keepalive = evidence.keepalive;
    auto shortest = keepalive.idle_detection_bound();
    if (keepalive.user_timeout.count() > 0) shortest = std::min(shortest, keepalive.user_timeout);
    // A reset can also close the socket after a retransmission; only a silence as long as the
    // shortest timer (less a little for the kernel's jiffies) makes it a timeout.
    const bool silent_long_enough =
        tcp.since_last_ack_received + std::chrono::milliseconds(100) >= shortest;
    if (tcp.keepalive_probes > 0 && tcp.retransmits == 0 && silent_long_enough) {
      timer = EvictionReason::keepalive_timeout;
    } else if (tcp.retransmits > 0 && tcp.keepalive_probes == 0 && silent_long_enough) {
      timer = EvictionReason::user_timeout;
    }
    if (timer || kernel_timeout) {
      kernel_timeout = true;
      if (evidence.pending_error == 0 && !mentions_timeout(cause)) cause = "connection timed out";
      cause += " (kernel: " + std::to_string(tcp.keepalive_probes) + " keep-alive probes, " +
               std::to_string(tcp.retransmits) + " retransmissions, nothing heard for " +
               std::to_string(tcp.since_last_ack_received.count()) + " ms)";
    }
  }
  const std::string detail = evidence.context + ": " + cause;
  if (kernel_timeout) {
    const auto reason = timer.value_or(evidence.data_in_flight ? EvictionReason::user_timeout
                                                               : EvictionReason::keepalive_timeout);
    return {reason, detail, last_kernel_ack(evidence)};
  }
  // The server's own words come first: a FATAL just before the close explains it.
  if (evidence.server_fatal) {
    return {EvictionReason::server_error, *evidence.server_fatal, evidence.now};
  }
  return {EvictionReason::server_closed, detail, evidence.now};
}

}  // namespace pgvigil::pool
