#include "proxy/auth/secret_lookup.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pool/server_connection.hpp"

namespace pgvigil::proxy::auth {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// The lookup connection is closed after this long without a lookup: logins come in bursts
// (an application starting), and a role's connection should not sit on the server for nothing.
constexpr std::chrono::seconds kIdleClose{60};
// The cache is swept of expired answers when it grows past this, so a stream of invented
// names cannot make it grow without bound; beyond kMaxCached, answers "not found" are not kept.
constexpr std::size_t kFirstSweep = 4096;
constexpr std::size_t kMaxCached = 100000;

// The secret in the answer's row: the second column (usename, passwd), or the only one.
std::optional<std::string> secret_of(const std::vector<std::optional<std::string>>& row) {
  const auto& column = row.size() >= 2 ? row[1] : row.front();
  if (!column || column->empty()) return std::nullopt;
  return column;
}

}  // namespace

pool::PoolConfig auth_server_config(const pool::PoolConfig& database,
                                    const AuthQuerySettings& settings) {
  pool::PoolConfig config = database;
  config.name = database.name + " (auth.query)";
  config.server.user = settings.user;
  config.server.password = settings.password;
  config.server.application_name = "pgvigil auth.query";
  return config;
}

NameSalts auth_query_name_salts(const AuthQuerySettings& settings) {
  std::string material = "pgvigil auth.query name salts";
  material.append(1, '\0').append(settings.user).append(1, '\0').append(settings.password);
  const Sha256Digest key = sha256(as_bytes(material));
  NameSalts salts;
  salts.key.assign(key.begin(), key.end());
  return salts;
}

SecretLookup::SecretLookup(stream::Executor executor, pool::PoolConfig server,
                           AuthQuerySettings settings)
    : executor_(executor),
      server_(std::make_shared<const pool::PoolConfig>(std::move(server))),
      settings_(std::move(settings)),
      name_salts_(auth_query_name_salts(settings_)),
      idle_timer_(executor) {}

SecretLookup::~SecretLookup() = default;

awaitable<LookupOutcome> SecretLookup::find(std::string user) {
  // co_spawn runs the lookup on its own executor and resumes this coroutine on the caller's.
  co_return co_await asio::co_spawn(executor_, find_owned(shared_from_this(), std::move(user)),
                                    asio::use_awaitable);
}

awaitable<LookupOutcome> SecretLookup::find_owned(std::shared_ptr<SecretLookup> self,
                                                  std::string user) {
  co_return co_await self->find_here(user);
}

awaitable<LookupOutcome> SecretLookup::find_here(const std::string& user) {
  if (const auto it = cache_.find(user); it != cache_.end() && Clock::now() < it->second.expires) {
    co_return it->second.entry;
  }
  co_await take_turn();
  // Whoever held the turn may have looked up the same name meanwhile.
  std::optional<LookupOutcome> outcome;
  if (const auto it = cache_.find(user); it != cache_.end() && Clock::now() < it->second.expires) {
    outcome = it->second.entry;
  } else {
    outcome = co_await ask_server(user);
  }
  end_turn();
  co_return std::move(*outcome);
}

awaitable<LookupOutcome> SecretLookup::ask_server(const std::string& user) {
  const auto deadline = Clock::now() + server_->pool.connect_timeout;
  const std::vector<std::string> parameters{user};
  // A connection that died while idle (a restarted server) is found by the query: one more try
  // on a fresh connection.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool fresh = connection_ == nullptr;
    if (fresh) {
      auto failure = co_await connect(deadline);
      if (failure) co_return LookupFailure{*failure};
    }
    auto answer = co_await connection_->query_row(settings_.sql, parameters, deadline);
    if (answer.error && answer.error->death) {
      connection_.reset();
      if (fresh) co_return LookupFailure{"auth.query connection lost: " + answer.error->message};
      continue;
    }
    close_when_idle();
    if (answer.error) {
      co_return LookupFailure{"auth.query failed: " + answer.error->message + " (SQLSTATE " +
                              answer.error->sqlstate + ")"};
    }
    const auto secret = answer.row ? secret_of(*answer.row) : std::nullopt;
    if (!secret) {
      remember(user, nullptr);
      co_return std::shared_ptr<const UserEntry>();
    }
    auto entry = make_user_entry(user, *secret, name_salts_);
    if (!entry) co_return LookupFailure{"auth.query answered an unusable secret: " + entry.error()};
    auto shared = std::make_shared<const UserEntry>(std::move(entry).value());
    remember(user, shared);
    co_return shared;
  }
  co_return LookupFailure{"auth.query connection lost twice"};
}

awaitable<std::optional<std::string>> SecretLookup::connect(Clock::time_point deadline) {
  std::string failures;
  for (const auto& host : server_->server.hosts) {
    auto connection =
        std::make_unique<pool::ServerConnection>(executor_, server_, ++connections_opened_);
    auto failure = co_await connection->connect(host, deadline);
    if (!failure) {
      connection_ = std::move(connection);
      co_return std::nullopt;
    }
    if (!failures.empty()) failures += "; ";
    failures += host.describe() + ": " + failure->message;
  }
  co_return "auth.query could not connect as \"" + settings_.user + "\": " + failures;
}

awaitable<void> SecretLookup::take_turn() {
  while (busy_) {
    auto wake =
        std::make_shared<asio::steady_timer>(executor_, asio::steady_timer::time_point::max());
    queue_.push_back(wake);
    co_await wake->async_wait(asio::as_tuple(asio::use_awaitable));
  }
  busy_ = true;
}

void SecretLookup::end_turn() {
  busy_ = false;
  if (queue_.empty()) return;
  queue_.front()->cancel();
  queue_.pop_front();
}

void SecretLookup::remember(const std::string& user, std::shared_ptr<const UserEntry> entry) {
  if (settings_.cache_time <= std::chrono::milliseconds::zero()) return;
  const auto now = Clock::now();
  if (cache_.size() >= next_sweep_) {
    std::erase_if(cache_, [now](const auto& item) { return item.second.expires <= now; });
    next_sweep_ = std::max(kFirstSweep, cache_.size() * 2);
  }
  if (entry == nullptr && cache_.size() >= kMaxCached) return;
  cache_[user] = Cached{std::move(entry), now + settings_.cache_time};
}

void SecretLookup::close_when_idle() {
  idle_timer_.expires_after(kIdleClose);
  idle_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;  // re-armed by a later lookup
    auto self = weak.lock();
    if (self && !self->busy_) self->connection_.reset();
  });
}

}  // namespace pgvigil::proxy::auth
