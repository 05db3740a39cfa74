#include "metrics/families.hpp"

namespace pgvigil::metrics {

MetricFamilies build_families(prometheus::Registry& registry) {
  return MetricFamilies{
      .evictions = prometheus::BuildCounter()
                       .Name("pgvigil_evictions_total")
                       .Help("Server connections evicted from a pool, by reason.")
                       .Register(registry),
      .detection_latency =
          prometheus::BuildHistogram()
              .Name("pgvigil_detection_latency_seconds")
              .Help("Time from a server connection's last sign of life to its eviction.")
              .Register(registry),
      .ping_latency = prometheus::BuildHistogram()
                          .Name("pgvigil_ping_latency_seconds")
                          .Help("Round trip of successful application-level pings.")
                          .Register(registry),
      .connect_latency = prometheus::BuildHistogram()
                             .Name("pgvigil_connect_latency_seconds")
                             .Help("Time to open a server connection (TCP, TLS, authentication).")
                             .Register(registry),
      .connect_failures = prometheus::BuildCounter()
                              .Name("pgvigil_connect_failures_total")
                              .Help("Failed attempts to open a server connection, by cause.")
                              .Register(registry),
      .server_connections = prometheus::BuildGauge()
                                .Name("pgvigil_server_connections")
                                .Help("Server connections currently in each state.")
                                .Register(registry),
      .keepalive_mismatches =
          prometheus::BuildCounter()
              .Name("pgvigil_keepalive_mismatches_total")
              .Help("Sockets whose keep-alive options read back differently than configured.")
              .Register(registry),
      .server_rtt = prometheus::BuildGauge()
                        .Name("pgvigil_server_rtt_seconds")
                        .Help("Last smoothed TCP round-trip time seen on the pool's sockets.")
                        .Register(registry),
      .checkout_wait = prometheus::BuildHistogram()
                           .Name("pgvigil_checkout_wait_seconds")
                           .Help("Time a client waited for a server connection.")
                           .Register(registry),
      .checkout_timeouts = prometheus::BuildCounter()
                               .Name("pgvigil_checkout_timeouts_total")
                               .Help("Checkouts that gave up because no connection came in time.")
                               .Register(registry),
      .server_health =
          prometheus::BuildGauge()
              .Name("pgvigil_server_health")
              .Help("What pgvigil believes about the server: 0 healthy, 1 suspect, 2 down.")
              .Register(registry),
      .server_verdicts = prometheus::BuildCounter()
                             .Name("pgvigil_server_verdicts_total")
                             .Help("Changes of a server's health, by the state it entered.")
                             .Register(registry),
      .server_down_verdict =
          prometheus::BuildHistogram()
              .Name("pgvigil_server_down_verdict_seconds")
              .Help("Time from a server's first sign of trouble to the verdict that it is down.")
              .Register(registry),
      .server_role = prometheus::BuildGauge()
                         .Name("pgvigil_server_role")
                         .Help("1 for the role each server of the pool's list was last found in "
                               "(primary, standby, unknown), 0 for the others.")
                         .Register(registry),
      .failovers = prometheus::BuildCounter()
                       .Name("pgvigil_failovers_total")
                       .Help("Times the pool moved its connections to another server of its "
                             "list (a failover or a switchover).")
                       .Register(registry),
      .failover_time =
          prometheus::BuildHistogram()
              .Name("pgvigil_failover_seconds")
              .Help("Time from the first sign that the server in use was going (a failed "
                    "connection attempt, a role change, the server turning suspect) to the first "
                    "transaction lent a connection to the server the pool moved to.")
              .Register(registry),
      .client_connections = prometheus::BuildGauge()
                                .Name("pgvigil_client_connections")
                                .Help("Client connections currently open to the pool.")
                                .Register(registry),
      .client_errors =
          prometheus::BuildCounter()
              .Name("pgvigil_client_errors_total")
              .Help("Errors sent to clients, by SQLSTATE class (first two characters).")
              .Register(registry),
      .pinned_clients =
          prometheus::BuildGauge()
              .Name("pgvigil_pinned_clients")
              .Help("Transaction-pooling clients holding their server connection for the rest of "
                    "their session, by the session state that pins them.")
              .Register(registry),
      .client_startup_errors =
          prometheus::BuildCounter()
              .Name("pgvigil_client_startup_errors_total")
              .Help("Errors sent to clients before they reached a database's pool (unknown "
                    "database, malformed startup packet, too many client connections), by "
                    "SQLSTATE class.")
              .Register(registry),
      .transactions = prometheus::BuildCounter()
                          .Name("pgvigil_transactions_total")
                          .Help("Transactions completed by clients of the pool.")
                          .Register(registry),
      .queries = prometheus::BuildCounter()
                     .Name("pgvigil_queries_total")
                     .Help("Queries relayed from clients of the pool to its servers.")
                     .Register(registry),
      .relayed_bytes = prometheus::BuildCounter()
                           .Name("pgvigil_relayed_bytes_total")
                           .Help("Bytes relayed between clients and servers, by direction.")
                           .Register(registry),
      .config_reloads = prometheus::BuildCounter()
                            .Name("pgvigil_config_reloads_total")
                            .Help("Configuration reloads, by result.")
                            .Register(registry),
      .worker_busy = prometheus::BuildGauge()
                         .Name("pgvigil_worker_busy_ratio")
                         .Help("Share of one core each worker's event loop used over its last "
                               "sampling period (0.2 s), as listen.pack_until_busy measures it; "
                               "0 when clients are spread (pack_until_busy 0) or one worker runs.")
                         .Register(registry),
      .worker_accepted = prometheus::BuildCounter()
                             .Name("pgvigil_worker_clients_accepted_total")
                             .Help("Client connections each worker accepted, TCP and Unix (cancel "
                                   "requests and connections then refused included).")
                             .Register(registry),
      .worker_moved_in = prometheus::BuildCounter()
                             .Name("pgvigil_worker_sessions_moved_in_total")
                             .Help("Client sessions that moved to each worker between two "
                                   "transactions, from a worker busier than "
                                   "listen.pack_until_busy.")
                             .Register(registry),
      .build_info = prometheus::BuildGauge()
                        .Name("pgvigil_build_info")
                        .Help("Always 1; the version label says which build runs.")
                        .Register(registry),
  };
}

}  // namespace pgvigil::metrics
