#pragma once
// The few pieces of Asio's epoll reactor that pgvigil's streams reach into: a descriptor's
// registration (for detail/turn_read_op.hpp's reads), what the loop last learnt about it
// (detail/loop_readiness.hpp), and its mode (know_non_blocking). They are private to Asio, so this
// is pinned to the Boost version it was written against; the static_assert below turns an upgrade
// into a compile error to revisit.

// The public headers first: Asio's detail headers assume they were included.
// clang-format off
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/basic_stream_descriptor.hpp>
#include <boost/asio/detail/descriptor_ops.hpp>
#include <boost/asio/detail/reactive_descriptor_service.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/scheduler_operation.hpp>
#include <boost/version.hpp>
#include <cstdint>
// clang-format on

static_assert(BOOST_VERSION == 108100,
              "stream/detail/reactor_access.hpp uses Boost 1.81's reactor internals: check "
              "turn_read_op.hpp and loop_readiness.hpp again");

namespace pgvigil::stream::detail {

namespace asio_detail = boost::asio::detail;
using DescriptorImpl = asio_detail::reactive_descriptor_service::implementation_type;
using ReactorData = asio_detail::reactor::per_descriptor_data;
using DescriptorState = asio_detail::reactor::descriptor_state;

// These members are private to Asio. An explicit instantiation may name a private member (the
// language exempts it from access checks), which is the one sanctioned way to reach them
// without patching Boost. Each tag names one member; member_pointer(Tag{}) returns it.
template <typename Tag, typename Tag::type Member>
struct ExposeMember {
  friend typename Tag::type member_pointer(Tag) { return Member; }
};
// A descriptor's reactor registration, kept by Asio's descriptor service.
struct ReactorDataTag {
  using type = ReactorData DescriptorImpl::*;
  friend type member_pointer(ReactorDataTag);
};
template struct ExposeMember<ReactorDataTag, &DescriptorImpl::reactor_data_>;
// What Asio knows of a descriptor's mode (descriptor_ops' bits: non-blocking, possibly a dup).
struct DescriptorModeTag {
  using type = asio_detail::descriptor_ops::state_type DescriptorImpl::*;
  friend type member_pointer(DescriptorModeTag);
};
template struct ExposeMember<DescriptorModeTag, &DescriptorImpl::state_>;
// The reactor's epoll descriptor.
struct EpollFdTag {
  using type = int asio_detail::reactor::*;
  friend type member_pointer(EpollFdTag);
};
template struct ExposeMember<EpollFdTag, &asio_detail::reactor::epoll_fd_>;
// The events a descriptor is registered for.
struct RegisteredEventsTag {
  using type = std::uint32_t DescriptorState::*;
  friend type member_pointer(RegisteredEventsTag);
};
template struct ExposeMember<RegisteredEventsTag, &DescriptorState::registered_events_>;
// Per kind of operation (read, write, except): whether an event came since a read or write
// reported the socket drained ("worth trying without waiting").
struct TrySpeculativeTag {
  using type = bool (DescriptorState::*)[asio_detail::reactor::max_ops];
  friend type member_pointer(TrySpeculativeTag);
};
template struct ExposeMember<TrySpeculativeTag, &DescriptorState::try_speculative_>;
// A descriptor's events from the loop's latest epoll_wait that reported it; kept after they
// were acted on.
struct TaskResultTag {
  using type = unsigned int asio_detail::scheduler_operation::*;
  friend type member_pointer(TaskResultTag);
};
template struct ExposeMember<TaskResultTag, &asio_detail::scheduler_operation::task_result_>;

// The descriptor's implementation object is protected, so a derived class may name it.
template <typename Executor>
struct DescriptorAccess : boost::asio::posix::basic_stream_descriptor<Executor> {
  static DescriptorImpl& implementation(boost::asio::posix::basic_stream_descriptor<Executor>& d) {
    constexpr auto impl = &DescriptorAccess::impl_;
    return (d.*impl).get_implementation();
  }
};

// Tells Asio that the descriptor is in non-blocking mode already, which it would otherwise
// learn only by setting it again (an ioctl before the first operation).
template <typename Executor>
void know_non_blocking(boost::asio::posix::basic_stream_descriptor<Executor>& descriptor) {
  auto& mode =
      DescriptorAccess<Executor>::implementation(descriptor).*member_pointer(DescriptorModeTag{});
  mode |= asio_detail::descriptor_ops::internal_non_blocking;
}

template <typename Executor>
ReactorData& reactor_data(boost::asio::posix::basic_stream_descriptor<Executor>& descriptor) {
  return DescriptorAccess<Executor>::implementation(descriptor).*member_pointer(ReactorDataTag{});
}

}  // namespace pgvigil::stream::detail
