#include "tests/support/test_certificates.hpp"

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "tests/support/subprocess.hpp"

namespace pgvigil::testing {
namespace fs = std::filesystem;

namespace {

void run_openssl(const fs::path& dir, const std::string& log_name, std::vector<std::string> args) {
  const auto openssl = find_executable("openssl");
  if (!openssl) throw std::runtime_error("openssl CLI not found: run scripts/install-deps.sh");
  args.insert(args.begin(), openssl->string());
  const auto log = dir / (log_name + ".log");
  const int code = run_process(args, log, dir, std::chrono::seconds(30));
  if (code != 0) {
    throw std::runtime_error("openssl " + args[1] + " failed (" + std::to_string(code) +
                             "): " + file_tail(log));
  }
}

const std::vector<std::string> kEcKey = {"-newkey", "ec", "-pkeyopt",
                                         "ec_paramgen_curve:prime256v1", "-nodes"};

}  // namespace

TestCertificateAuthority::TestCertificateAuthority(fs::path dir, std::string name)
    : dir_(std::move(dir)), name_(std::move(name)) {
  ca_ = {dir_ / (name_ + "-ca.crt"), dir_ / (name_ + "-ca.key")};
  std::vector<std::string> args = {"req", "-x509"};
  args.insert(args.end(), kEcKey.begin(), kEcKey.end());
  args.insert(args.end(),
              {"-keyout", ca_.key.string(), "-out", ca_.cert.string(), "-days", "2", "-subj",
               "/CN=pgvigil test CA " + name_, "-addext", "basicConstraints=critical,CA:TRUE",
               "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
  run_openssl(dir_, name_ + "-ca", args);
}

CertificatePair TestCertificateAuthority::issue(const std::string& file_stem,
                                                const std::string& common_name,
                                                const std::string& subject_alt_names) const {
  CertificatePair pair{dir_ / (file_stem + ".crt"), dir_ / (file_stem + ".key")};
  const auto request = dir_ / (file_stem + ".csr");
  std::vector<std::string> args = {"req", "-new"};
  args.insert(args.end(), kEcKey.begin(), kEcKey.end());
  args.insert(args.end(), {"-keyout", pair.key.string(), "-out", request.string(), "-subj",
                           "/CN=" + common_name});
  run_openssl(dir_, file_stem + "-req", args);
  const auto extensions = dir_ / (file_stem + ".ext");
  {
    std::ofstream out(extensions);
    out << "basicConstraints=CA:FALSE\n";
    if (!subject_alt_names.empty()) out << "subjectAltName=" << subject_alt_names << "\n";
  }
  run_openssl(dir_, file_stem + "-sign",
              {"x509", "-req", "-in", request.string(), "-CA", ca_.cert.string(), "-CAkey",
               ca_.key.string(), "-CAcreateserial", "-out", pair.cert.string(), "-days", "1",
               "-extfile", extensions.string()});
  fs::permissions(pair.key, fs::perms::owner_read | fs::perms::owner_write);
  return pair;
}

}  // namespace pgvigil::testing
