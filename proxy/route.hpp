#pragma once
// One database as clients see it: its settings, its pool, its client metrics, and what its
// server reported about itself.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/proxy_metrics.hpp"
#include "pool/pool.hpp"
#include "proxy/auth/secret_lookup.hpp"
#include "proxy/client_settings.hpp"
#include "proxy/proxy_settings.hpp"
#include "proxy/relay/prepared_statements.hpp"
#include "proxy/relay_tally.hpp"
#include "proxy/server_parameters.hpp"

namespace pgvigil::proxy {

// What the first of a database's shard routes to lend a connection learnt of the server, for
// the others: their routes live on other workers, and a session needs the server's parameters
// at startup (paused or busy, a shard that never lent a connection could not answer it).
struct LearntServer {
  std::mutex mutex;
  std::vector<std::pair<std::string, std::string>> parameters;  // under mutex
};

// Orders (name, value) pairs, a SettingMap's entries among them, without copying either.
struct SettingOrder {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    using Views = std::pair<std::string_view, std::string_view>;
    return Views(a.first, a.second) < Views(b.first, b.second);
  }
};

struct Route {
  RouteSettings settings;
  std::shared_ptr<pool::Pool> pool;
  std::shared_ptr<metrics::ClientMetrics> metrics;
  // auth.query's lookups on this database's server (null without auth.query), shared by the
  // routes of its shards.
  std::shared_ptr<auth::SecretLookup> secret_lookup;
  // Relay counts of this route's sessions, until /metrics is read (relay_tally.hpp).
  std::unique_ptr<RelayTally> relayed = std::make_unique<RelayTally>();
  pool::Milliseconds checkout_timeout{5000};
  // The server's ParameterStatus values (server_version, DateStyle, ...), learned from the
  // first connection lent to a client. Read and written only on the pool's worker.
  ServerParameters server_parameters;
  // Shared by the routes of one database's shards; null for a route of its own.
  std::shared_ptr<LearntServer> learnt;
  // How the server spells a reported setting a client asked for at startup ({"datestyle",
  // "German"} -> "German, DMY"), learnt the first time a connection applies it, so that every
  // client's ParameterStatus shows what a direct connection would. Pool's worker only.
  std::map<std::pair<std::string, std::string>, std::string, SettingOrder> reported_spellings;
  // Clients with the same startup settings share one copy (most clients of an application
  // send the same ones), so an idle client does not carry a map of its own. Pool's worker only.
  std::vector<std::weak_ptr<const SettingMap>> interned_settings;
  // The texts of clients' named statements in transaction pooling, shared by every session and
  // server connection of the route. Pool's worker only.
  relay::StatementTexts statement_texts;
};

// The shared copy of `settings` for this route.
std::shared_ptr<const SettingMap> intern_settings(Route& route, SettingMap settings);

// Fills route.server_parameters from what another shard learnt, if it has not learnt them
// itself; false when nobody has yet. On the route's pool's worker.
bool knows_server_parameters(Route& route);
// Records what a connection reported, for this route and its database's other shards.
void learn_server_parameters(Route& route, std::vector<std::pair<std::string, std::string>> found);

}  // namespace pgvigil::proxy
