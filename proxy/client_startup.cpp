#include "proxy/client_startup.hpp"

#include "proxy/authenticator.hpp"
#include "proxy/wire/backend_messages.hpp"
#include "proxy/wire/frame_decoder.hpp"
#include "proxy/wire/frontend_parser.hpp"
#include "proxy/wire/protocol.hpp"
#include "proxy/wire/startup_message.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

wire::DecoderLimits limits_of(const ProxySettings& settings) {
  wire::DecoderLimits limits;
  limits.max_message_size = settings.max_message_bytes;
  return limits;
}

}  // namespace

ClientStartup::ClientStartup(ProxyService& service, stream::SocketStream& stream)
    : service_(service), stream_(stream), reader_(stream, limits_of(service.settings())) {}

awaitable<std::optional<ClientError>> ClientStartup::read_startup() {
  wire::StartupMessage startup;
  while (true) {
    auto next = co_await reader_.next();
    if (auto* error = std::get_if<ClientError>(&next)) co_return *error;
    const auto& frame = std::get<OwnedFrame>(next);
    if (frame.startup_code == wire::kSslRequestCode ||
        frame.startup_code == wire::kGssEncRequestCode) {
      // TLS to clients is not offered (yet): 'N' tells the client to go on in the clear.
      std::string refusal;
      wire::append_encryption_refusal(refusal);
      boost::system::error_code ec;
      co_await stream_.write_all(refusal, ec);
      if (ec) co_return ClientError{"", "client went away", "", ""};
      continue;
    }
    if (frame.startup_code == wire::kCancelRequestCode) {
      if (auto key = wire::parse_cancel_request(frame.payload)) {
        service_.cancels().cancel({key->process_id, key->secret_key});
      }
      // A cancel connection gets no answer, as in PostgreSQL.
      co_return ClientError{"", "cancel request", "", ""};
    }
    if ((frame.startup_code >> 16) != wire::kProtocolMajor3) {
      co_return ClientError{
          sqlstate::kFeatureNotSupported,
          "unsupported frontend protocol " + std::to_string(frame.startup_code >> 16) + "." +
              std::to_string(frame.startup_code & 0xffff) + ": pgvigil speaks protocol 3.0",
          "", ""};
    }
    auto parsed = wire::parse_startup_message(frame.payload, frame.startup_code);
    if (!parsed) co_return ClientError{sqlstate::kProtocolViolation, parsed.error(), "", ""};
    startup = std::move(parsed).value();
    break;
  }

  route_ = service_.find_route(startup.database);
  if (route_ == nullptr) {
    co_return ClientError{sqlstate::kInvalidCatalogName,
                          "database \"" + startup.database + "\" does not exist in pgvigil", "",
                          "pgvigil serves: " + service_.route_names()};
  }
  if (!startup.replication.empty()) {
    co_return ClientError{sqlstate::kFeatureNotSupported,
                          "replication connections are not supported through pgvigil", "",
                          "Connect to the server directly for replication."};
  }
  auto settings = settings_from_startup(startup);
  if (!settings) co_return ClientError{sqlstate::kProtocolViolation, settings.error(), "", ""};
  settings_ = std::move(settings).value();
  user_ = startup.user;

  std::vector<std::string> unsupported;
  for (const auto& parameter : startup.others) {
    if (parameter.name.starts_with("_pq_.")) unsupported.push_back(parameter.name);
  }
  if (startup.minor_version > 0 || !unsupported.empty()) {
    std::string negotiate;
    wire::append_negotiate_protocol_version(negotiate, 0, unsupported);
    boost::system::error_code ec;
    co_await stream_.write_all(negotiate, ec);
    if (ec) co_return ClientError{"", "client went away", "", ""};
  }
  reader_.enter_normal_phase();
  co_return std::nullopt;
}

awaitable<std::optional<ClientError>> ClientStartup::authenticate() {
  co_return co_await proxy::authenticate(stream_, reader_, route_->settings.auth_method, user_,
                                         service_.users());
}

Admitted ClientStartup::admitted() && {
  return Admitted{route_, std::move(settings_), reader_.take_leftover()};
}

}  // namespace pgvigil::proxy
