#pragma once
// Certificates for TLS tests, made with the openssl CLI in a test's directory: a CA, and leaf
// certificates it signs (server certificates with subject alternative names, client
// certificates whose common name is a user name). EC P-256 keys: quick to make. Keys are mode 0600,
// as libpq requires of a client key.

#include <filesystem>
#include <string>

namespace pgvigil::testing {

struct CertificatePair {
  std::filesystem::path cert;
  std::filesystem::path key;
};

class TestCertificateAuthority {
 public:
  // A self-signed CA, <dir>/<name>-ca.crt and .key. Throws std::runtime_error when openssl fails.
  TestCertificateAuthority(std::filesystem::path dir, std::string name);

  const std::filesystem::path& cert() const { return ca_.cert; }
  // A leaf signed by this CA: <dir>/<file_stem>.crt and .key, subject CN=common_name.
  // subject_alt_names: e.g. "IP:127.0.0.1,DNS:localhost" ("" for none, as for clients).
  CertificatePair issue(const std::string& file_stem, const std::string& common_name,
                        const std::string& subject_alt_names = "") const;

 private:
  std::filesystem::path dir_;
  std::string name_;
  CertificatePair ca_;
};

}  // namespace pgvigil::testing
