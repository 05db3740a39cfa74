#pragma once
// Sets the pgvigil_server_connections gauges from the pools' own counts, when metrics are read
// (metrics::Registry::on_scrape). Pools keep exact counts anyway; copying them at read time keeps
// shared gauges (and their locks) off the relay's path, and lets the shards of one database, and
// a pool still draining after a reload, add up in the database's series.

#include <memory>
#include <vector>

#include "pool/pool.hpp"

namespace pgvigil::pool {

// `pools` may mix databases: pools sharing a metrics handle are summed into it.
void publish_connection_gauges(const std::vector<std::shared_ptr<Pool>>& pools);

}  // namespace pgvigil::pool
