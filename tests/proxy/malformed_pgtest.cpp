// What pgvigil answers to malformed client input, byte for byte, against the real binary and a
// real PostgreSQL. Each row of the table opens a raw TCP connection, sends bytes no driver would
// send, and checks the documented answer: an ErrorResponse (severity FATAL, the given SQLSTATE)
// followed by the server closing the socket, an 'N' to an encryption request, or a silent close.
// Afterwards the same daemon must still serve a normal libpq client, and the errors must show on
// /metrics. A second test throws 200 deterministic random blobs at the startup phase.
//
// Documented answers: protocol violation 08P01 (bad length, unknown message type, oversized
// message, garbage startup, no user), unsupported protocol version 0A000, unknown database
// 3D000; a CancelRequest gets no answer, as from PostgreSQL.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <iostream>
#include <map>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/metrics/http_client.hpp"
#include "tests/proxy/raw_pg_connection.hpp"
#include "tests/support/admin_metrics.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::uint32_t kMaxMessageBytes = 65536;  // listen.max_message_bytes of the daemon
constexpr milliseconds kAnswerTimeout{5000};

constexpr std::uint32_t kSslRequestCode = 80877103;
constexpr std::uint32_t kGssEncRequestCode = 80877104;
constexpr std::uint32_t kCancelRequestCode = 80877102;

// The binary under test: $PGVIGIL_BINARY when set (to try another build), else the one CMake built.
std::string daemon_binary() {
  const char* path = std::getenv("PGVIGIL_BINARY");
  return path != nullptr && *path != '\0' ? path : PGVIGIL_BINARY;
}

std::uint32_t protocol(std::uint32_t major, std::uint32_t minor) { return (major << 16) | minor; }


// What a row expects back.
enum class Expect {
  error,               // ErrorResponse FATAL with one of `sqlstates`, then the server closes
  refusal_then_login,  // the single byte 'N', then a normal startup on the same socket works
  silent_close,        // the server closes without sending a byte
  close_any,           // the server closes; an ErrorResponse before is allowed, nothing else
};

enum class Phase {
  startup,  // bytes sent right after connecting
  normal,   // bytes sent after a trust login reached ReadyForQuery
};

struct Row {
  std::string name;
  Phase phase;
  std::string bytes;
  bool close_after_send;  // shutdown(SHUT_WR) after the bytes: a truncated message, then EOF
  Expect expect;
  std::set<std::string> sqlstates;
};

std::vector<Row> table() {
  const std::string v3 = be32(protocol(3, 0));
  std::vector<Row> rows = {
      // --- startup phase ---
      {"startup length 4 (< 8)", Phase::startup, be32(4) + v3, false, Expect::error, {"08P01"}},
      {"startup length 7 (< 8)", Phase::startup, be32(7) + v3, false, Expect::error, {"08P01"}},
      {"startup length 0", Phase::startup, be32(0) + v3, false, Expect::error, {"08P01"}},
      {"startup length 10001 (> 10000)", Phase::startup, be32(10001) + v3, false, Expect::error,
       {"08P01"}},
      {"startup length 0x7fffffff", Phase::startup, be32(0x7fffffff) + v3, false, Expect::error,
       {"08P01"}},
      {"startup truncated, then close", Phase::startup,
       be32(100) + v3 + std::string("user\0postgres\0", 14), true, Expect::silent_close, {}},
      {"startup length only, then close", Phase::startup, be32(40).substr(0, 2), true,
       Expect::silent_close, {}},
      // 1234.5678 is the CancelRequest code: here with a startup packet's length, so 08P01.
      {"protocol 1234.5678 with a startup body", Phase::startup,
       startup_packet({{"user", "postgres"}, {"database", "app"}}, protocol(1234, 5678)), false,
       Expect::error, {"08P01", "0A000"}},
      {"unknown protocol 1234.9999", Phase::startup,
       startup_packet({{"user", "postgres"}, {"database", "app"}}, protocol(1234, 9999)), false,
       Expect::error, {"08P01", "0A000"}},
      {"unsupported protocol 2.0", Phase::startup,
       startup_packet({{"user", "postgres"}, {"database", "app"}}, protocol(2, 0)), false,
       Expect::error, {"0A000"}},
      {"SSLRequest, then startup", Phase::startup, be32(8) + be32(kSslRequestCode), false,
       Expect::refusal_then_login, {}},
      {"GSSENCRequest, then startup", Phase::startup, be32(8) + be32(kGssEncRequestCode), false,
       Expect::refusal_then_login, {}},
      {"SSLRequest with length 12", Phase::startup,
       be32(12) + be32(kSslRequestCode) + be32(0), false, Expect::error, {"08P01"}},
      {"HTTP request", Phase::startup, "GET / HTTP/1.1\r\n\r\n", false, Expect::error, {"08P01"}},
      {"TLS ClientHello", Phase::startup, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 9),
       false, Expect::error, {"08P01"}},
      {"startup without user", Phase::startup, startup_packet({{"database", "app"}}), false,
       Expect::error, {"08P01"}},
      {"startup parameter without terminator", Phase::startup,
       be32(8 + 13) + v3 + std::string("user\0postgres", 13), false, Expect::error, {"08P01"}},
      {"unknown database", Phase::startup,
       startup_packet({{"user", "postgres"}, {"database", "no_such_db"}}), false, Expect::error,
       {"3D000"}},
      {"CancelRequest with a random key", Phase::startup,
       be32(16) + be32(kCancelRequestCode) + be32(0x12345678) + be32(0x9abcdef0), false,
       Expect::silent_close, {}},
      // --- normal phase, after ReadyForQuery ---
      {"unknown message type 'z'", Phase::normal, typed_message('z', "hello"), false,
       Expect::error, {"08P01"}},
      {"unknown message type 0x00", Phase::normal, typed_message('\0', ""), false, Expect::error,
       {"08P01"}},
      {"Query with length 3", Phase::normal, std::string("Q") + be32(3), false, Expect::error,
       {"08P01"}},
      {"Query with length 0", Phase::normal, std::string("Q") + be32(0), false, Expect::error,
       {"08P01"}},
      {"Query above max_message_bytes", Phase::normal,
       std::string("Q") + be32(kMaxMessageBytes * 2), false, Expect::error, {"08P01"}},
      {"Query with length 0xffffffff", Phase::normal, std::string("Q") + be32(0xffffffff), false,
       Expect::error, {"08P01"}},
      {"PasswordMessage outside authentication", Phase::normal,
       typed_message('p', std::string("secret\0", 7)), false, Expect::error, {"08P01"}},
      {"valid Query, then 'z'", Phase::normal,
       typed_message('Q', std::string("SELECT 1\0", 9)) + typed_message('z', ""), false,
       Expect::error, {"08P01"}},
      {"truncated Query, then close", Phase::normal,
       std::string("Q") + be32(100) + "SELE", true, Expect::close_any, {}},
      {"truncated header, then close", Phase::normal, "Q\0\0", true, Expect::close_any, {}},
  };
  return rows;
}

std::string describe(const BackendMessage& message) {
  if (message.type == 'E' || message.type == 'N') {
    auto fields = error_fields(message.payload);
    return std::string(1, message.type) + " S=" + fields['S'] + " C=" + fields['C'] +
           " M=" + fields['M'];
  }
  return std::string("message '") + message.type + "' of " +
         std::to_string(message.payload.size()) + " bytes";
}

class MalformedPgTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pg_ = PgCluster::start_new();
    admin_port_ = free_tcp_port();
    listen_port_ = free_tcp_port();
    const std::string config =
        "admin: {listen: \"127.0.0.1:" + std::to_string(admin_port_) + "\"}\n" +
        "listen: {address: \"127.0.0.1:" + std::to_string(listen_port_) +
        "\", max_message_bytes: " + std::to_string(kMaxMessageBytes) +
        ", startup_timeout: 10s}\n"
        "pool: {min_idle: 1, max_size: 4}\n"
        "databases:\n"
        "  app:\n"
        "    host: 127.0.0.1\n"
        "    port: " +
        std::to_string(pg_->port()) +
        "\n"
        "    dbname: postgres\n"
        "    user: postgres\n"
        "    sslmode: disable\n"
        "    pool_mode: transaction\n"
        "    application_name: pgvigil-malformed\n";
    daemon_ = DaemonProcess::start(daemon_binary(), config);
  }
  static void TearDownTestSuite() {
    daemon_.reset();
    pg_.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(pg_);
    ASSERT_TRUE(daemon_);
    const bool serving = wait_until([] { return login_works(); }, seconds(15), milliseconds(100));
    ASSERT_TRUE(serving) << "pgvigil does not accept a trust login; log:\n" << daemon_->log_text();
  }

  static bool login_works() {
    try {
      RawPgConnection connection(listen_port_);
      return connection.login("postgres", "app", seconds(5));
    } catch (const std::exception&) {
      return false;
    }
  }

  // A normal client through the daemon: libpq, a query, its answer.
  static std::string libpq_query(const std::string& sql, std::string* error) {
    const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(listen_port_) +
                                 " dbname=app user=postgres connect_timeout=5";
    PGconn* conn = PQconnectdb(conninfo.c_str());
    std::string value;
    if (PQstatus(conn) != CONNECTION_OK) {
      *error = PQerrorMessage(conn);
    } else {
      PGresult* result = PQexec(conn, sql.c_str());
      if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1) {
        value = PQgetvalue(result, 0, 0);
      } else {
        *error = PQresultErrorMessage(result);
      }
      PQclear(result);
    }
    PQfinish(conn);
    return value;
  }

  // Runs one row; failures name the row (SCOPED_TRACE by the caller).
  void run_row(const Row& row) {
    RawPgConnection connection(listen_port_);
    if (row.phase == Phase::normal) {
      std::string failure;
      ASSERT_TRUE(connection.login("postgres", "app", kAnswerTimeout, &failure)) << failure;
    }
    connection.send(row.bytes);  // a server that rejects the first bytes may close early
    if (row.close_after_send) connection.finish_sending();

    switch (row.expect) {
      case Expect::error: {
        BackendMessage message;
        const auto end = connection.read_message(message, kAnswerTimeout);
        if (end == RawPgConnection::ReadEnd::message && message.type != 'E' &&
            row.phase == Phase::normal) {
          // A valid request sent before the violation is answered first; skip to the error.
          while (message.type != 'E' &&
                 connection.read_message(message, kAnswerTimeout) ==
                     RawPgConnection::ReadEnd::message) {
          }
        }
        ASSERT_EQ(end, RawPgConnection::ReadEnd::message)
            << (end == RawPgConnection::ReadEnd::closed ? "closed without an ErrorResponse"
                                                        : "no answer within 5 s");
        ASSERT_EQ(message.type, 'E') << "expected an ErrorResponse, got " << describe(message);
        auto fields = error_fields(message.payload);
        ASSERT_FALSE(fields.empty()) << "malformed ErrorResponse payload";
        EXPECT_EQ(fields['S'], "FATAL") << describe(message);
        EXPECT_TRUE(row.sqlstates.contains(fields['C']))
            << "SQLSTATE " << fields['C'] << " (" << fields['M'] << "), expected one of "
            << ::testing::PrintToString(row.sqlstates);
        EXPECT_FALSE(fields['M'].empty());
        EXPECT_TRUE(connection.closed_by_server_within(kAnswerTimeout))
            << "the server did not close the connection after the FATAL error";
        break;
      }
      case Expect::refusal_then_login: {
        char byte = 0;
        ASSERT_EQ(connection.read_byte(byte, kAnswerTimeout), RawPgConnection::ReadEnd::message)
            << "no answer to the encryption request";
        EXPECT_EQ(byte, 'N');
        std::string failure;
        EXPECT_TRUE(connection.login("postgres", "app", kAnswerTimeout, &failure))
            << "startup after 'N' failed: " << failure;
        break;
      }
      case Expect::silent_close: {
        char byte = 0;
        const auto end = connection.read_byte(byte, kAnswerTimeout);
        EXPECT_EQ(end, RawPgConnection::ReadEnd::closed)
            << (end == RawPgConnection::ReadEnd::message
                    ? "expected a silent close, got byte " + std::to_string(byte & 0xff)
                    : std::string("the connection stayed open for 5 s"));
        break;
      }
      case Expect::close_any: {
        BackendMessage message;
        RawPgConnection::ReadEnd end;
        while ((end = connection.read_message(message, kAnswerTimeout)) ==
               RawPgConnection::ReadEnd::message) {
          EXPECT_EQ(message.type, 'E') << "unexpected " << describe(message);
          if (message.type == 'E') {
            EXPECT_EQ(error_fields(message.payload)['C'], "08P01") << describe(message);
          }
        }
        EXPECT_EQ(end, RawPgConnection::ReadEnd::closed) << "the connection stayed open for 5 s";
        break;
      }
    }
  }

  static std::unique_ptr<PgCluster> pg_;
  static std::unique_ptr<DaemonProcess> daemon_;
  static std::uint16_t admin_port_;
  static std::uint16_t listen_port_;
};

std::unique_ptr<PgCluster> MalformedPgTest::pg_;
std::unique_ptr<DaemonProcess> MalformedPgTest::daemon_;
std::uint16_t MalformedPgTest::admin_port_ = 0;
std::uint16_t MalformedPgTest::listen_port_ = 0;

TEST_F(MalformedPgTest, EveryRowGetsItsDocumentedAnswerAndTheDaemonKeepsServing) {
  for (const auto& row : table()) {
    SCOPED_TRACE("row: " + row.name);
    run_row(row);
    ASSERT_TRUE(daemon_->running()) << "pgvigil died; log:\n" << daemon_->log_text();
  }

  std::string error;
  EXPECT_EQ(libpq_query("SELECT 41 + 1", &error), "42") << error << "\nlog:\n"
                                                        << daemon_->log_text();
  // Normal-phase violations happen once the client is routed to a pool: counted by class.
  const std::string page = metrics_page(admin_port_);
  const auto errors = sample_value(page, "pgvigil_client_errors_total", {{"class", "08"}});
  ASSERT_TRUE(errors.has_value()) << "no pgvigil_client_errors_total{class=\"08\"}:\n" << page;
  EXPECT_GT(*errors, 0) << page;
}

// Deterministic: a fixed seed, so a failure is reproduced by running the test again. Half the
// blobs are pure noise, half start with a plausible length and protocol code so the parser past
// the header is reached. Each blob is followed by end-of-file, so every connection must end.
TEST_F(MalformedPgTest, RandomStartupBlobsNeverStopTheDaemon) {
  std::mt19937 random(20240611);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> size(0, 300);
  int left_open = 0;
  std::map<std::string, int> answers;  // last answer of each connection, for the record
  for (int i = 0; i < 200; ++i) {
    std::string blob;
    const int body = size(random);
    const auto noise = [&](int count) {
      for (int k = 0; k < count; ++k) blob.push_back(static_cast<char>(byte(random)));
    };
    switch (i % 8) {
      case 1:
      case 7: {  // a plausible header, then noise: the parser past the header is reached
        const std::uint32_t codes[] = {protocol(3, 0), protocol(3, 1), kSslRequestCode,
                                       kCancelRequestCode, static_cast<std::uint32_t>(random())};
        const std::uint32_t length = 8 + static_cast<std::uint32_t>(body) -
                                     static_cast<std::uint32_t>(size(random) % 3);  // mostly exact
        blob = be32(length) + be32(codes[random() % 5]);
        for (int k = 0; k < body; ++k) {
          // Mostly keys and values, so parse_startup_message's name/value handling is reached.
          blob.push_back(byte(random) < 200 ? "user\0app\0x="[k % 12] : static_cast<char>(byte(random)));
        }
        break;
      }
      case 3:  // SSLRequest ('N'), then noise in place of the startup packet
        blob = be32(8) + be32(kSslRequestCode);
        noise(body);
        break;
      case 5: {  // a valid startup with a random extra parameter: cut short, or noise after it
        std::string name(1 + random() % 8, 'k');
        for (auto& c : name) c = static_cast<char>('a' + random() % 26);
        blob = startup_packet({{"user", "postgres"}, {"database", "app"}, {name, "v"}});
        if (random() % 2 == 0) {
          blob.resize(random() % blob.size());
        } else {
          noise(body);
        }
        break;
      }
      default:
        noise(body);
    }
    SCOPED_TRACE("blob " + std::to_string(i) + " of " + std::to_string(blob.size()) + " bytes");
    RawPgConnection connection(listen_port_);
    connection.send(blob);
    connection.finish_sending();
    BackendMessage message;
    RawPgConnection::ReadEnd end;
    std::string answer = "silence";
    // Whatever the answer ('N', an ErrorResponse, even a login), the connection must end.
    const auto deadline = std::chrono::steady_clock::now() + kAnswerTimeout;
    do {
      end = connection.read_message(message, kAnswerTimeout);
      if (end == RawPgConnection::ReadEnd::message) {
        answer = message.type == 'E' ? "E " + error_fields(message.payload)['C']
                                     : std::string("message ") + message.type;
      }
    } while (end == RawPgConnection::ReadEnd::message &&
             std::chrono::steady_clock::now() < deadline);
    if (end != RawPgConnection::ReadEnd::closed) ++left_open;
    ++answers[answer];
    ASSERT_TRUE(daemon_->running()) << "pgvigil died; log:\n" << daemon_->log_text();
  }
  EXPECT_EQ(left_open, 0) << "connections still open 5 s after end-of-file";
  std::string summary;
  for (const auto& [answer, count] : answers) summary += answer + ": " + std::to_string(count) + "; ";
  std::cout << "answers to 200 random blobs: " << summary << "\n";
  EXPECT_TRUE(login_works()) << "log:\n" << daemon_->log_text();
  std::string error;
  EXPECT_EQ(libpq_query("SELECT 'still here'", &error), "still here") << error;
}

}  // namespace
}  // namespace pgvigil::testing
