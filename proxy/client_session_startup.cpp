// ClientSession: the startup, on the worker that accepted the client: the startup packet, TLS,
// authentication, the client limit; then the session begins on its pool's worker (the same one
// when its database has a shard there).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/client_session.hpp"
#include "proxy/client_startup.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

ClientError pushed_out_error() {
  return {sqlstate::kTooManyConnections,
          "too many connections are starting up at once: this one waited longest and made room",
          "", "listen.max_startup_connections and max_startup_per_address bound connections that "
          "have not authenticated yet; retry."};
}

ClientError too_many_clients_error(int limit) {
  return {sqlstate::kTooManyConnections,
          "too many client connections: listen.max_client_connections is " +
              std::to_string(limit),
          "", ""};
}

}  // namespace

// --- startup, on the accepting worker ----------------------------------------------------------

awaitable<void> ClientSession::handshake(sockaddr_storage peer_address) {
  // A client accepted and silent (defer_accept 0, or after it) is dropped after startup_timeout.
  // The flag, not the error code, tells the handler the startup is over: an expiry already queued
  // when the timer is cancelled still runs with success, and by then the stream may be on another
  // worker.
  auto over = std::make_shared<bool>(false);
  asio::steady_timer deadline(stream_.get_executor(), service_.settings().startup_timeout);
  deadline.async_wait([weak = weak_from_this(), over](boost::system::error_code ec) {
    if (ec || *over) return;
    if (auto self = weak.lock()) self->stream_.cancel();
  });

  // Connections that have not authenticated have a room of their own: a newer one may push
  // this one out (it is ended here, on its own worker, unless its startup is over by then).
  ClientStartup startup(service_, stream_, stream::SocketStream::peer_at(peer_address));
  auto slot = service_.startup_gate().admit(
      startup.peer().address, [weak = weak_from_this(), over, executor = stream_.get_executor()] {
        asio::post(executor, [weak, over] {
          if (*over) return;
          if (auto self = weak.lock()) {
            self->pushed_out_ = true;
            // Shut for reading as well as cancelled: a read already completed and queued would
            // otherwise be followed by another that waits. Writing stays open for the 53300.
            self->stream_.shut_reading();
            self->stream_.cancel();
          }
        });
      });

  // Told why, unless the client is halfway into a TLS handshake, where clear text is noise.
  const auto why = [&](ClientError error) {
    return pushed_out_ && !startup.tls_handshake_failed() ? pushed_out_error() : std::move(error);
  };
  auto error = co_await startup.read_startup();
  route_ = startup.route();
  if (error) co_return fail(why(std::move(*error)));
  enter(Phase::authenticating, "startup packet read");
  error = co_await startup.authenticate();
  if (error) co_return fail(why(std::move(*error)));
  // What tells the client it is in goes with the startup reply (begin()), or ahead of a later
  // refusal (send_failure()).
  occasional().greeting = std::make_unique<std::string>(startup.take_greeting());
  if (route_->settings.user_pools) {
    // Queries run as the client's role: its own pool, known only now that it has logged in.
    // The daemon keeps those pools on one worker: the lookup runs there (a coroutine of its
    // own; awaiting it resumes this one here), and nothing touches the stream meanwhile.
    using Found = std::variant<Route*, ClientError>;
    auto find = [this, &startup]() -> awaitable<Found> {
      co_return service_.user_route(*route_, startup.user(), startup.login_proof());
    };
    auto lookup = asio::co_spawn(service_.user_route_executor(), std::move(find), asio::use_awaitable);
    auto user_route = co_await std::move(lookup);
    if (auto* refused = std::get_if<ClientError>(&user_route)) co_return fail(std::move(*refused));
    route_ = std::get<Route*>(user_route);
  }
  // Pushed out at the last await (the user's route looked up on another worker, or the end of
  // the authentication): the stream is shut for reading and the slot given away, so the client
  // is told, not admitted to a session whose first read would find the end.
  if (pushed_out_) co_return fail(pushed_out_error());
  *over = true;
  deadline.cancel();
  slot.leave();
  if (!service_.admit_client()) {
    co_return fail(too_many_clients_error(service_.settings().max_client_connections));
  }
  counted_ = true;

  // Move to the pool's worker: hand the socket off here, adopt it there.
  auto admitted = std::move(startup).admitted();
  settings_ = std::make_shared<const SettingMap>(std::move(admitted.settings));
  if (!admitted.leftover.empty()) {
    occasional().pending_input = std::make_unique<std::string>(std::move(admitted.leftover));
  }
  const auto home = route_->pool->executor();
  if (home == stream_.get_executor()) {
    // Accepted on the pool's own worker (its shard there): nothing moves. Most sessions need
    // nothing awaited to begin, and begin here without a coroutine of their own (a co_spawn
    // costs about 3,000 instructions, callgrind). The others' begin() is spawned rather than
    // awaited, so the startup's frame is freed.
    if (!begins_with_server()) {
      begin_at_once();
      co_return;
    }
    auto here = [self = shared_from_this()] { return self->begin(); };
    asio::co_spawn(home, std::move(here), asio::detached);
    co_return;
  }
  const auto handed = stream_.hand_off();
  auto task = [self = shared_from_this(), home, handed] {
    // The new event loop refused the socket (out of memory): nothing can reach the client.
    if (!self->stream_.adopt(home, handed)) return self->end_session();
    return self->begin();
  };
  asio::co_spawn(home, std::move(task), asio::detached);
}

}  // namespace pgvigil::proxy
