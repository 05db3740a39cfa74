#pragma once
// What the event loop already knows about a socket, read from Asio's epoll reactor at no system
// call: has anything arrived since a read claimed the socket drained (turn_read_op.hpp)?
//
// Why: before lending a server connection in transaction pooling, pgvigil makes sure no FIN or
// stray message waits on it. A recv(MSG_PEEK) for every lending was one system call per
// transaction; answering from the loop (with the read it lets the relay skip) took the pooler
// from 5.35 to 4.57 system calls and 12.6 to 12.3 µs of CPU per transaction at 32 clients, 14.7
// to 13.0 µs at 8 (perf stat, pgbench -S). The loop has the answer already, up to its latest
// epoll_wait, which is what PgBouncer lends on too: a level-triggered loop reports what waits.
//
// How, with the edge-triggered registration Asio uses:
// - The registration also asks for EPOLLRDHUP (report_peer_close), so an event tells the peer's
//   FIN apart from bytes. A FIN that came with the last answer, before the epoll_wait that
//   reported both, raises no later event; the hang-up bit in that event is what shows it.
// - The reactor keeps per descriptor the events of the latest epoll_wait that reported it (a
//   field Asio's scheduler passes along and nothing resets). A read that claims the socket
//   drained adds a marker bit to them that epoll never reports (mark_drain_claim); the next
//   epoll_wait that reports the descriptor overwrites them, marker and all.
// So a socket is quiet since its claim (quiet_since_claim) when the marker is still there, the
// events kept hold no hang-up, and the reactor has acted on no read event since the claim (its
// flag to try a read without waiting is still clear; this covers an event reported before the
// claim but acted on after it). A claim by a read tried before any report (when the read
// starts) is not marked, so look() peeks after it. What it cannot see is what arrived after the
// loop's latest epoll_wait, which may be a batch of handlers ago: a FIN or bytes the next
// epoll_wait will report. A peek's blind spot is narrower (what arrives after it), which is the
// price of not making a system call per lending; PgBouncer's level-triggered loop lends on the
// same knowledge as this.
//
// Everything here runs on the descriptor's own thread: each worker's io_context runs on one
// thread, the reactor's epoll_wait included, so Asio's per-descriptor lock is not needed.

// reactor_access.hpp first: it brings the public headers Asio's detail headers assume.
// clang-format off
#include "stream/detail/reactor_access.hpp"
#include <sys/epoll.h>
// clang-format on

namespace pgvigil::stream::detail {

// A bit epoll_wait never reports (EPOLLMSG is not implemented), and Asio's reactor tests only
// EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLERR and EPOLLHUP in the events it acts on.
inline constexpr unsigned int kDrainClaimMarker = EPOLLMSG;
inline constexpr unsigned int kHangUpEvents = EPOLLRDHUP | EPOLLHUP | EPOLLERR;

// The events kept are a member of the reactor operation the descriptor state privately derives
// from. A C-style cast is the one conversion to an inaccessible base the language allows.
inline unsigned int& latest_events(DescriptorState& state) {
  return ((asio_detail::scheduler_operation&)state).*member_pointer(TaskResultTag{});
}

// Called by a read that claims the socket drained. Only a read the reactor performs for an event
// it reported marks the claim: that report shows a FIN that came with the answer, and only when
// the registration asked for EPOLLRDHUP. A read tried before any report (when it starts) may
// have left a FIN that no report shows, so it clears the marker, and the next look() peeks.
inline void note_drain_claim(DescriptorState& state, bool performed_for_an_event) {
  const bool reports_close = (state.*member_pointer(RegisteredEventsTag{}) & EPOLLRDHUP) != 0;
  if (performed_for_an_event && reports_close) {
    latest_events(state) |= kDrainClaimMarker;
  } else {
    latest_events(state) &= ~kDrainClaimMarker;
  }
}

// Adds EPOLLRDHUP to the descriptor's registration: one epoll_ctl. Asio keeps the bit when it
// modifies the registration later (it starts from the events registered). False when the
// descriptor is not registered or the kernel refused.
template <typename Executor>
bool report_peer_close(asio_detail::reactor& reactor,
                       boost::asio::posix::basic_stream_descriptor<Executor>& descriptor) {
  DescriptorState* state = reactor_data(descriptor);
  if (state == nullptr) return false;
  auto& registered = state->*member_pointer(RegisteredEventsTag{});
  if (registered == 0) return false;  // epoll does not take this kind of descriptor
  if ((registered & EPOLLRDHUP) != 0) return true;
  epoll_event event{};
  event.events = registered | EPOLLRDHUP;
  event.data.ptr = state;
  if (::epoll_ctl(reactor.*member_pointer(EpollFdTag{}), EPOLL_CTL_MOD, descriptor.native_handle(),
                  &event) != 0) {
    return false;
  }
  registered = event.events;
  return true;
}

// A read of pgvigil's own (a recv outside the reactor) found the socket empty: the reactor
// need not try again before the next event reports something, which it would otherwise do for
// the next read it is given (one more recv that fails).
template <typename Executor>
void note_found_empty(boost::asio::posix::basic_stream_descriptor<Executor>& descriptor) {
  DescriptorState* state = reactor_data(descriptor);
  if (state != nullptr) {
    (state->*member_pointer(TrySpeculativeTag{}))[asio_detail::reactor::read_op] = false;
  }
}

// True when nothing reached the loop for this descriptor since the last read claimed it drained
// (see above); false when something may have, or when it cannot tell.
template <typename Executor>
bool quiet_since_claim(boost::asio::posix::basic_stream_descriptor<Executor>& descriptor) {
  DescriptorState* state = reactor_data(descriptor);
  if (state == nullptr) return false;
  if ((state->*member_pointer(RegisteredEventsTag{}) & EPOLLRDHUP) == 0) return false;
  if ((state->*member_pointer(TrySpeculativeTag{}))[asio_detail::reactor::read_op]) return false;
  const auto latest = latest_events(*state);
  return (latest & kDrainClaimMarker) != 0 && (latest & kHangUpEvents) == 0;
}

}  // namespace pgvigil::stream::detail
