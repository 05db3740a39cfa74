#pragma once
// A fresh directory under /tmp, removed with everything in it when the object goes away.
// Under /tmp rather than $HOME or the build tree: /root is 0700, and PostgreSQL, which the
// harness runs as user postgres when we are root, must reach its data dir and socket.

#include <filesystem>
#include <string_view>

namespace pgvigil::testing {

class TempDir {
 public:
  // Creates /tmp/<prefix>XXXXXX (mode 0700). Throws std::system_error on failure.
  explicit TempDir(std::string_view prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace pgvigil::testing
