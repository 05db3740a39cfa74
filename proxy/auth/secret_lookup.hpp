#pragma once
// auth.query: the secret of a client missing from the users file, looked up on the database's
// own server by a dedicated role (PgBouncer's auth_user and auth_query), so that logins need no
// copied file and follow the server: a changed password or a dropped role takes effect once the
// cached answer is older than auth.query.cache_time.
//
// One server connection per database, opened at the first lookup and closed after a minute
// without one; lookups take turns on it. Answers, found or not, are cached for cache_time:
// a second login of the same name costs no round trip whether the user exists or not, so the
// time a login takes does not tell which names exist.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>

#include "pool/pool_settings.hpp"
#include "proxy/auth/users_file.hpp"
#include "proxy/proxy_settings.hpp"
#include "stream/socket_stream.hpp"

namespace pgvigil::pool {
class ServerConnection;
}

namespace pgvigil::proxy::auth {

// The server could not be asked (down, the auth role refused, the query failed): what the log
// says. Clients are told only that the lookup failed.
struct LookupFailure {
  std::string detail;
};
// null: the server has no such role, or no password for it.
using LookupOutcome = std::variant<std::shared_ptr<const UserEntry>, LookupFailure>;

// The auth role's view of a database: the same servers, TLS and keep-alive, logged in as
// settings.user with its password.
pool::PoolConfig auth_server_config(const pool::PoolConfig& database,
                                    const AuthQuerySettings& settings);

// Salts shown to names the server does not know, keyed by the auth role's secret: stable across
// restarts and instances, as a real verifier's salt is (scram_verifier.hpp).
NameSalts auth_query_name_salts(const AuthQuerySettings& settings);

class SecretLookup : public std::enable_shared_from_this<SecretLookup> {
 public:
  using Clock = std::chrono::steady_clock;

  // server: auth_server_config() of the database. The connection lives on `executor`.
  SecretLookup(stream::Executor executor, pool::PoolConfig server, AuthQuerySettings settings);
  ~SecretLookup();

  // The user's entry as the server holds it. Thread-safe: runs on the lookup's executor and
  // resumes on the caller's.
  boost::asio::awaitable<LookupOutcome> find(std::string user);
  const NameSalts& name_salts() const { return name_salts_; }
  // Whether it asks this server with these settings (a reload keeps it then).
  bool serves(const pool::ServerEndpoint& server, const AuthQuerySettings& settings) const {
    return server_->server == server && settings_ == settings;
  }

 private:
  struct Cached {
    std::shared_ptr<const UserEntry> entry;  // null: not found
    Clock::time_point expires;
  };

  // find() on the lookup's executor; `self` keeps the lookup alive until it ends.
  static boost::asio::awaitable<LookupOutcome> find_owned(std::shared_ptr<SecretLookup> self,
                                                          std::string user);
  boost::asio::awaitable<LookupOutcome> find_here(const std::string& user);
  boost::asio::awaitable<LookupOutcome> ask_server(const std::string& user);
  // Opens the connection to the first host that accepts the auth role; the failures otherwise.
  boost::asio::awaitable<std::optional<std::string>> connect(Clock::time_point deadline);
  boost::asio::awaitable<void> take_turn();
  void end_turn();
  void remember(const std::string& user, std::shared_ptr<const UserEntry> entry);
  void close_when_idle();

  stream::Executor executor_;
  std::shared_ptr<const pool::PoolConfig> server_;
  AuthQuerySettings settings_;
  NameSalts name_salts_;
  std::unordered_map<std::string, Cached> cache_;
  std::unique_ptr<pool::ServerConnection> connection_;
  std::uint64_t connections_opened_ = 0;
  std::size_t next_sweep_ = 4096;  // cache size at which expired answers are swept
  bool busy_ = false;              // a lookup holds the connection
  std::deque<std::shared_ptr<boost::asio::steady_timer>> queue_;  // lookups waiting their turn
  boost::asio::steady_timer idle_timer_;
};

}  // namespace pgvigil::proxy::auth
