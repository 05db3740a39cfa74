#pragma once
// What a database's server reported about itself with ParameterStatus (server_version,
// DateStyle, ...), which every client's startup reply repeats. The messages are encoded once,
// when learnt: a login copies them and writes only those its client's settings change. Writing
// all thirteen for each login was about a fifth of pgvigil's instructions per new connection
// (callgrind, pgbench -C).

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgvigil::proxy {

class ServerParameters {
 public:
  using List = std::vector<std::pair<std::string, std::string>>;  // name as reported, value
  // The most parameters kept: kReportedParameters has thirteen.
  static constexpr std::size_t kMost = 32;
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  ServerParameters() = default;
  // Keeps the first kMost of `list`.
  explicit ServerParameters(List list);

  bool empty() const { return list_.empty(); }
  std::size_t size() const { return list_.size(); }
  const List& list() const { return list_; }
  const std::string& name(std::size_t i) const { return list_[i].first; }

  // The index of the parameter named `name` (ASCII case ignored: a SettingMap key finds
  // "DateStyle"), or npos.
  std::size_t index_of(std::string_view name) const;

  // Every parameter's ParameterStatus message as reported, back to back, in list() order.
  std::string_view encoded() const { return encoded_; }
  // Where parameter i's message begins and ends in encoded().
  std::size_t begins_at(std::size_t i) const { return i == 0 ? 0 : ends_[i - 1]; }
  std::size_t ends_at(std::size_t i) const { return ends_[i]; }

 private:
  List list_;
  std::string encoded_;
  std::vector<std::size_t> ends_;
};

}  // namespace pgvigil::proxy
