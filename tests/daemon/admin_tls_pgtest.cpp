// The admin endpoint over HTTPS (admin.tls) through the real pgvigil binary: /healthz, /readyz
// and /metrics answered over TLS and not in the clear, a client that does not trust the
// certificate refused, control requests still needing the bearer token, `pgvigil pause/resume`
// speaking TLS to the daemon, a renewed certificate taken at a reload, and HTTPS turned off by a
// reload refused (it needs a restart).

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/daemon/daemon_test_util.hpp"
#include "tests/metrics/http_client.hpp"
#include "tests/metrics/https_client.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_certificates.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr const char* kToken = "admin-token-0123456789abcdef";

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class AdminTlsPgTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pg_ = PgCluster::start_new(); }
  static void TearDownTestSuite() { pg_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(pg_);
    write_text(work_.path() / "token", kToken);
  }

  std::string config(bool with_tls) const {
    std::string yaml = "workers: 1\n";
    yaml += "admin:\n  listen: \"127.0.0.1:" + std::to_string(ports_.admin) + "\"\n";
    yaml += "  token_file: \"" + (work_.path() / "token").string() + "\"\n";
    if (with_tls) {
      yaml += "  tls: {cert_file: \"" + server_.cert.string() + "\", key_file: \"" +
              server_.key.string() + "\"}\n";
    }
    yaml += "listen: {address: \"127.0.0.1:" + std::to_string(ports_.listen) + "\"}\n";
    yaml += "databases:\n  app:\n    host: 127.0.0.1\n    port: " + std::to_string(pg_->port()) +
            "\n    dbname: postgres\n    user: postgres\n    sslmode: disable\n";
    return yaml;
  }

  test::HttpResult get(const std::string& target, const fs::path& ca,
                       const std::map<std::string, std::string>& headers = {}) const {
    return test::https_request("127.0.0.1", ports_.admin, "GET", target, ca, headers);
  }

  // `pgvigil -c <config> pause|resume app`: its exit code; its output in last_output_.
  int control(const DaemonProcess& daemon, const std::string& action) {
    const auto output = work_.path() / ("control-" + std::to_string(++commands_) + ".log");
    const int code =
        run_process({PGVIGIL_BINARY, "-c", daemon.config_path().string(), action, "app"}, output,
                    work_.path(), seconds(30));
    last_output_ = read_text(output);
    return code;
  }

  static std::unique_ptr<PgCluster> pg_;
  TempDir work_{"pgvigil-admin-tls-"};
  TestCertificateAuthority ca_{work_.path(), "admin"};
  CertificatePair server_ = ca_.issue("admin-server", "127.0.0.1", "IP:127.0.0.1");
  DaemonPorts ports_;
  std::string last_output_;
  int commands_ = 0;
};

std::unique_ptr<PgCluster> AdminTlsPgTest::pg_;

TEST_F(AdminTlsPgTest, HttpsOnlyTokenStillRequiredAndTheCommandSpeaksTls) {
  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config(true));
  ASSERT_TRUE(daemon->wait_for_log("serving metrics on https://", seconds(10)))
      << daemon->log_text();

  EXPECT_EQ(get("/healthz", ca_.cert()).status, 200);
  ASSERT_TRUE(wait_until([&] { return get("/readyz", ca_.cert()).status == 200; }, seconds(10)));
  const auto metrics = get("/metrics", ca_.cert());
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("pgvigil_server_connections"), std::string::npos);

  // In the clear, nothing an HTTP client can read comes back.
  bool plain_answered = false;
  try {
    plain_answered = test::http_get("127.0.0.1", ports_.admin, "/healthz", seconds(3)).status != 0;
  } catch (const std::exception&) {
  }
  EXPECT_FALSE(plain_answered) << "the endpoint answered plain HTTP";
  // A client that trusts another CA does not get through the handshake.
  const TestCertificateAuthority stranger(work_.path(), "stranger");
  EXPECT_THROW(get("/healthz", stranger.cert()), std::system_error);

  // Control over TLS still needs the token.
  auto refused =
      test::https_request("127.0.0.1", ports_.admin, "POST", "/pause?database=app", ca_.cert());
  EXPECT_EQ(refused.status, 401) << refused.body;
  auto wrong = test::https_request("127.0.0.1", ports_.admin, "POST", "/pause?database=app",
                                   ca_.cert(), {{"Authorization", "Bearer not-the-token-at-all"}});
  EXPECT_EQ(wrong.status, 401) << wrong.body;

  // The command reads the same config: the token and the certificate it must be shown.
  EXPECT_EQ(control(*daemon, "pause"), 0) << last_output_ << daemon->log_text();
  const auto paused =
      get("/pause?database=app", ca_.cert(), {{"Authorization", std::string("Bearer ") + kToken}});
  EXPECT_EQ(paused.header("X-Pgvigil-Paused"), "1") << paused.body;
  EXPECT_EQ(control(*daemon, "resume"), 0) << last_output_;
  ASSERT_TRUE(wait_until([&] { return get("/readyz", ca_.cert()).status == 200; }, seconds(10)));
}

TEST_F(AdminTlsPgTest, ARenewedCertificateIsTakenAtAReloadAndHttpsCannotBeTurnedOff) {
  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config(true));
  ASSERT_TRUE(daemon->wait_for_log("serving metrics on https://", seconds(10)))
      << daemon->log_text();
  ASSERT_EQ(get("/healthz", ca_.cert()).status, 200);

  const TestCertificateAuthority renewed_ca(work_.path(), "renewed");
  const auto renewed = renewed_ca.issue("admin-renewed", "127.0.0.1", "IP:127.0.0.1");
  fs::copy_file(renewed.cert, server_.cert, fs::copy_options::overwrite_existing);
  fs::copy_file(renewed.key, server_.key, fs::copy_options::overwrite_existing);
  ASSERT_TRUE(daemon->send_signal(SIGHUP));
  ASSERT_TRUE(daemon->wait_for_log("admin TLS certificate loaded", seconds(10)))
      << daemon->log_text();
  EXPECT_EQ(get("/healthz", renewed_ca.cert()).status, 200);
  EXPECT_THROW(get("/healthz", ca_.cert()), std::system_error) << "the old certificate is shown";
  EXPECT_EQ(control(*daemon, "pause"), 0)
      << "the command trusts the renewed file: " << last_output_;
  EXPECT_EQ(control(*daemon, "resume"), 0) << last_output_;

  daemon->write_config(config(false));
  ASSERT_TRUE(daemon->send_signal(SIGHUP));
  ASSERT_TRUE(daemon->wait_for_log("HTTPS turned off, which needs a restart", seconds(10)))
      << daemon->log_text();
  EXPECT_EQ(get("/healthz", renewed_ca.cert()).status, 200) << "still HTTPS";
}

}  // namespace
}  // namespace pgvigil::testing
