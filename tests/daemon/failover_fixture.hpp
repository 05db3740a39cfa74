#pragma once
// The fixture of the tests with several servers per database: a real primary and a streaming
// standby the harness starts (pg_basebackup -R), and a pgvigil whose database lists them.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "tests/daemon/daemon_test_util.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {

using Clock = std::chrono::steady_clock;
using Ports = DaemonPorts;
using std::chrono::milliseconds;
using std::chrono::seconds;

// "127.0.0.1:PORT", quoted for a YAML list.
std::string host_entry(const PgCluster& pg);

// The first value of sql's first row through conn, or "ERROR: ..." when it fails.
std::string value_through(PGconn* conn, const std::string& sql);

// pgvigil_server_role{pool="app",server=...,role=...}; -1 when absent.
double server_role(const Ports& ports, const PgCluster& server, const std::string& role);

// A file's whole text ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);

// pgvigil_evictions_total{pool="app",reason=...}.
double evictions(const Ports& ports, const std::string& reason);

class FailoverPgTest : public ::testing::Test {
 protected:
  // A primary with a table `writes`, and a standby that has replayed it.
  void SetUp() override;

  // hosts: the YAML list's entries; target: "" leaves target_session_attrs out; pool_extra:
  // more keys of the pool section ("pause_timeout: 1s, ").
  std::unique_ptr<DaemonProcess> start(const std::string& hosts, const std::string& target,
                                       const std::string& checkout_timeout = "10s",
                                       const std::string& pool_extra = "");

  Client client();

  // Waits until `standby` has replayed everything the primary has written so far.
  bool caught_up(const PgCluster& standby);

  // pgbench's tables (-i -s 1) on the primary, replayed by the standby; its log in `work`.
  // pgbench's path, or nullopt (with the failure added) when it is missing or fails.
  std::optional<std::filesystem::path> pgbench_tables(const std::filesystem::path& work);

  std::unique_ptr<PgCluster> primary_;
  std::unique_ptr<PgCluster> standby_;
  Ports ports_;
};

}  // namespace pgvigil::testing
