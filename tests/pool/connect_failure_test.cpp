#include "pool/connect_failure.hpp"

#include <gtest/gtest.h>

namespace pgvigil::pool {
namespace {

struct Case {
  const char* libpq_message;
  ConnectFailureCause expected;
};

class ClassifyConnectFailure : public ::testing::TestWithParam<Case> {};

TEST_P(ClassifyConnectFailure, NamesTheCause) {
  EXPECT_EQ(to_string(classify_connect_failure(GetParam().libpq_message)),
            to_string(GetParam().expected));
}

// Messages as libpq 15 and PostgreSQL 15 print them.
INSTANTIATE_TEST_SUITE_P(
    Libpq15, ClassifyConnectFailure,
    ::testing::Values(
        Case{"connection to server at \"127.0.0.1\", port 5499 failed: Connection refused\n\tIs "
             "the server running on that host and accepting TCP/IP connections?",
             ConnectFailureCause::refused},
        Case{"connection to server at \"127.0.0.1\", port 5499 failed: FATAL:  password "
             "authentication failed for user \"app\"",
             ConnectFailureCause::authentication},
        Case{"connection to server at \"127.0.0.1\", port 5499 failed: FATAL:  no pg_hba.conf "
             "entry for host \"127.0.0.1\", user \"x\", database \"y\", no encryption",
             ConnectFailureCause::authentication},
        Case{"connection to server at \"127.0.0.1\", port 5499 failed: FATAL:  sorry, too many "
             "clients already",
             ConnectFailureCause::too_many_connections},
        Case{"connection to server at \"127.0.0.1\", port 5499 failed: FATAL:  remaining "
             "connection slots are reserved for non-replication superuser connections",
             ConnectFailureCause::too_many_connections},
        Case{"connection to server at \"127.0.0.1\", port 5499 failed: FATAL:  database \"gone\" "
             "does not exist",
             ConnectFailureCause::database_missing},
        Case{"connection to server at \"127.0.0.1\", port 5499 failed: FATAL:  the database "
             "system is shutting down",
             ConnectFailureCause::server_starting},
        Case{"connection to server at \"127.0.0.1\", port 5499 failed: FATAL:  the database "
             "system is starting up",
             ConnectFailureCause::server_starting},
        Case{"could not translate host name \"nowhere.invalid\" to address: Name or service not "
             "known",
             ConnectFailureCause::name_resolution},
        Case{"connection to server at \"10.0.0.1\", port 5432 failed: No route to host",
             ConnectFailureCause::network},
        Case{"server does not support SSL, but SSL was required", ConnectFailureCause::tls},
        Case{"something nobody expected", ConnectFailureCause::other}));

}  // namespace
}  // namespace pgvigil::pool
