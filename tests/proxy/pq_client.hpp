#pragma once
// Small libpq conveniences for tests that act as a PostgreSQL client of pgvigil: owning handles,
// and statements whose failure is reported as text instead of thrown, so a test (or a client
// thread) can collect and assert on it.

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>

namespace pgvigil::testing {

struct PgConnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultClearer {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgConn = std::unique_ptr<PGconn, PgConnCloser>;
using PgResult = std::unique_ptr<PGresult, PgResultClearer>;

// Connects (blocking). The handle is never null; check PQstatus / PQerrorMessage.
inline PgConn pq_connect(const std::string& conninfo) { return PgConn(PQconnectdb(conninfo.c_str())); }

inline bool pq_ok(const PgConn& conn) { return conn && PQstatus(conn.get()) == CONNECTION_OK; }

inline PgResult pq_exec(const PgConn& conn, const std::string& sql) {
  return PgResult(PQexec(conn.get(), sql.c_str()));
}

// The first result after a PQsend* call (nullptr when sending failed); later results are read
// and dropped. PQexec keeps only the last result: after a FATAL error that is libpq's own "server
// closed the connection" result, which has no SQLSTATE. The first one is the server's error.
inline PgResult pq_first_result(const PgConn& conn, bool sent) {
  if (!sent) return nullptr;
  PgResult first(PQgetResult(conn.get()));
  while (PGresult* more = PQgetResult(conn.get())) PQclear(more);
  return first;
}

inline bool result_ok(const PgResult& result) {
  const auto status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

// The SQLSTATE of a failed result, "" when none.
inline std::string result_sqlstate(const PgResult& result) {
  const char* code = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
  return code ? code : "";
}

inline std::string result_field(const PgResult& result, int field) {
  const char* text = result ? PQresultErrorField(result.get(), field) : nullptr;
  return text ? text : "";
}

// The first column of the first row, or nullopt with *error set (when given) to what went wrong.
inline std::optional<std::string> pq_value(const PgConn& conn, const std::string& sql,
                                           std::string* error = nullptr) {
  auto result = pq_exec(conn, sql);
  if (!result_ok(result) || PQntuples(result.get()) < 1 || PQnfields(result.get()) < 1) {
    if (error) {
      *error = sql + ": " +
               (result_ok(result) ? std::string("no rows") : std::string(PQerrorMessage(conn.get())));
    }
    return std::nullopt;
  }
  return std::string(PQgetvalue(result.get(), 0, 0));
}

// Runs a statement that returns no rows; "" on success, else the statement and libpq's message.
inline std::string pq_run(const PgConn& conn, const std::string& sql) {
  auto result = pq_exec(conn, sql);
  if (result_ok(result)) return "";
  return sql + ": " + PQerrorMessage(conn.get());
}

}  // namespace pgvigil::testing
