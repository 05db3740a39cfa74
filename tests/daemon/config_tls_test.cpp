// listen.tls and databases.<name>.tls_mode: the files are loaded when the config is read, so a
// missing file, a key that does not match its certificate or a mode that cannot be honoured is a
// config error naming the key (at start, at --check and at a reload).

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/daemon/config_parse_util.hpp"

namespace pgvigil::daemon {
namespace {

namespace fs = std::filesystem;

const std::string kDatabase = "databases:\n  app:\n    user: app\n";

// A self-signed certificate and its key in a scratch directory (OpenSSL's API: the pure tests do
// not run the openssl CLI).
class SelfSigned {
 public:
  SelfSigned() {
    std::string pattern = (fs::temp_directory_path() / "pgvigil-tls-config-XXXXXX").string();
    dir_ = ::mkdtemp(pattern.data());
    write("server", make_key());
    write_key("other.key", make_key());  // a key of no certificate here
  }
  ~SelfSigned() { fs::remove_all(dir_); }
  fs::path cert() const { return dir_ / "server.crt"; }
  fs::path key() const { return dir_ / "server.key"; }
  fs::path other_key() const { return dir_ / "other.key"; }

 private:
  static EVP_PKEY* make_key() { return EVP_EC_gen("P-256"); }

  void write_key(const std::string& name, EVP_PKEY* key) const {
    FILE* out = std::fopen((dir_ / name).c_str(), "w");
    PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(out);
    EVP_PKEY_free(key);
  }

  void write(const std::string& stem, EVP_PKEY* key) const {
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    FILE* out = std::fopen((dir_ / (stem + ".crt")).c_str(), "w");
    PEM_write_X509(out, cert);
    std::fclose(out);
    X509_free(cert);
    write_key(stem + ".key", key);
  }

  fs::path dir_;
};

std::string listen_tls(const std::string& keys) {
  return "listen:\n  tls: {" + keys + "}\n" + kDatabase;
}

TEST(ConfigTlsTest, NoCertificateOffersNoTls) {
  const Config config = parse(kDatabase);
  EXPECT_EQ(config.proxy.tls.context, nullptr);
  EXPECT_EQ(config.proxy.tls.mode, proxy::ClientTlsMode::allow);
  EXPECT_EQ(config.routes[0].tls_mode, proxy::ClientTlsMode::allow);
}

TEST(ConfigTlsTest, ACertificateAndItsKeyMakeTheContext) {
  const SelfSigned files;
  const Config config = parse(listen_tls("cert_file: " + files.cert().string() +
                                         ", key_file: " + files.key().string() +
                                         ", mode: require, min_protocol: TLSv1.3"));
  EXPECT_NE(config.proxy.tls.context, nullptr);
  EXPECT_TRUE(config.proxy.tls.files.tls13_only);
  EXPECT_EQ(config.routes[0].tls_mode, proxy::ClientTlsMode::require);
}

TEST(ConfigTlsTest, RelativePathsAreTakenFromTheConfigFilesDirectory) {
  const Config config =
      parse(kDatabase + "    tls_mode: allow\n" +
                "listen: {tls: {cert_file: c.crt, key_file: k.key, mode: disable}}\n",
            "/etc/pgvigil/config.yaml");
  EXPECT_EQ(config.proxy.tls.files.cert_file, "/etc/pgvigil/c.crt");
  EXPECT_EQ(config.proxy.tls.files.key_file, "/etc/pgvigil/k.key");
  EXPECT_EQ(config.proxy.tls.context, nullptr) << "disable loads nothing";
}

TEST(ConfigTlsTest, FileErrorsNameTheKeyAndTheFile) {
  const SelfSigned files;
  auto error =
      error_of(listen_tls("cert_file: /nonexistent/server.crt, key_file: " + files.key().string()));
  EXPECT_EQ(error.key(), "listen.tls.cert_file");
  EXPECT_NE(std::string(error.what()).find("cannot load certificate /nonexistent/server.crt"),
            std::string::npos)
      << error.what();

  error = error_of(listen_tls("cert_file: " + files.cert().string()));
  EXPECT_EQ(error.key(), "listen.tls.key_file");

  error = error_of(listen_tls("cert_file: " + files.cert().string() +
                              ", key_file: " + files.other_key().string()));
  EXPECT_EQ(error.key(), "listen.tls.key_file");
  EXPECT_NE(std::string(error.what()).find("does not match certificate"), std::string::npos)
      << error.what();

  error = error_of(listen_tls("cert_file: " + files.cert().string() + ", key_file: " +
                              files.key().string() + ", ca_file: /nonexistent/ca.crt"));
  EXPECT_EQ(error.key(), "listen.tls.ca_file");
  EXPECT_NE(std::string(error.what()).find("cannot load CA certificates /nonexistent/ca.crt"),
            std::string::npos)
      << error.what();
}

TEST(ConfigTlsTest, ModesThatCannotBeHonouredAreRefused) {
  auto error = error_of(listen_tls("mode: require"));
  EXPECT_EQ(error.key(), "listen.tls.mode");
  EXPECT_NE(std::string(error.what()).find("listen.tls.cert_file is empty"), std::string::npos);

  error = error_of(kDatabase + "    tls_mode: require\n" + "listen: {tls: {mode: disable}}\n");
  EXPECT_EQ(error.key(), "databases.app.tls_mode");
  EXPECT_NE(std::string(error.what()).find("listen.tls.mode is disable"), std::string::npos);

  const SelfSigned files;
  const std::string certificate =
      "cert_file: " + files.cert().string() + ", key_file: " + files.key().string();
  error = error_of(listen_tls(certificate + ", mode: verify-full"));
  EXPECT_NE(std::string(error.what()).find("listen.tls.ca_file is empty"), std::string::npos);
  error =
      error_of(kDatabase + "    tls_mode: verify-ca\n" + "listen: {tls: {" + certificate + "}}\n");
  EXPECT_EQ(error.key(), "databases.app.tls_mode");

  // A CA file (here the self-signed certificate itself) makes verify modes possible.
  const Config config = parse(kDatabase + "    tls_mode: verify-full\n" + "listen: {tls: {" +
                              certificate + ", ca_file: " + files.cert().string() + "}}\n");
  EXPECT_EQ(config.routes[0].tls_mode, proxy::ClientTlsMode::verify_full);
}

// auth.hba_file is read whole with the config: a bad line, or rules the config cannot serve, are
// config errors (at start, --check and reload), not clients refused later.
TEST(ConfigTlsTest, AccessRulesAreCheckedWithTheConfig) {
  const SelfSigned files;
  const auto rules = [](const std::string& name, const std::string& text) {
    const auto path = fs::temp_directory_path() / name;
    std::ofstream(path) << text;
    return path.string();
  };
  auto error =
      error_of(kDatabase + "auth: {hba_file: " + rules("pgv-bad.hba", "host all all\n") + "}\n");
  EXPECT_EQ(error.key(), "auth.hba_file");
  EXPECT_NE(std::string(error.what()).find("pgv-bad.hba:1: expected 5 fields"), std::string::npos)
      << error.what();
  error = error_of(kDatabase +
                   "auth: {hba_file: " + rules("pgv-md5.hba", "host all all all md5\n") + "}\n");
  EXPECT_NE(std::string(error.what()).find("need auth.users_file"), std::string::npos)
      << error.what();
  error = error_of(kDatabase +
                   "auth: {hba_file: " + rules("pgv-cert.hba", "hostssl all all all cert\n") +
                   "}\nlisten: {tls: {cert_file: " + files.cert().string() +
                   ", key_file: " + files.key().string() + "}}\n");
  EXPECT_NE(std::string(error.what()).find("cert rules need client TLS with listen.tls.ca_file"),
            std::string::npos)
      << error.what();
  const Config config =
      parse(kDatabase + "auth: {hba_file: " + rules("pgv-ok.hba", "local all all trust\n") + "}\n");
  EXPECT_FALSE(config.proxy.hba_file.empty());
  fs::remove(fs::temp_directory_path() / "pgv-bad.hba");
  fs::remove(fs::temp_directory_path() / "pgv-md5.hba");
  fs::remove(fs::temp_directory_path() / "pgv-cert.hba");
  fs::remove(fs::temp_directory_path() / "pgv-ok.hba");
}

TEST(ConfigTlsTest, AdminTlsLoadsItsCertificateAndNamesItsKeysInErrors) {
  const SelfSigned files;
  EXPECT_EQ(parse(kDatabase).admin.tls, nullptr) << "plain HTTP by default";
  const Config config = parse(kDatabase + "admin: {tls: {cert_file: " + files.cert().string() +
                              ", key_file: " + files.key().string() + "}}\n");
  EXPECT_NE(config.admin.tls, nullptr);
  EXPECT_EQ(config.admin.tls_cert_file, files.cert().string());

  auto error = error_of(kDatabase + "admin: {tls: {cert_file: " + files.cert().string() + "}}\n");
  EXPECT_EQ(error.key(), "admin.tls.key_file");
  error = error_of(kDatabase + "admin: {tls: {cert_file: /nonexistent/a.crt, key_file: " +
                   files.key().string() + "}}\n");
  EXPECT_EQ(error.key(), "admin.tls.cert_file");
  EXPECT_NE(std::string(error.what()).find("/nonexistent/a.crt"), std::string::npos);
  error = error_of(kDatabase + "admin: {tls: {cert_file: " + files.cert().string() +
                   ", key_file: " + files.other_key().string() + "}}\n");
  EXPECT_EQ(error.key(), "admin.tls.key_file");
}

}  // namespace
}  // namespace pgvigil::daemon
