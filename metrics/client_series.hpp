#pragma once
// One pool's client-side metric children: the ClientMetrics handle that
// Registry::add_client_pool returns.

#include <array>
#include <cstddef>
#include <cstdint>
#include <shared_mutex>
#include <span>
#include <utility>
#include <vector>
#include <string>
#include <string_view>

#include "metrics/families.hpp"
#include "metrics/proxy_metrics.hpp"

namespace pgvigil::metrics {

class ClientSeries final : public ClientMetrics {
 public:
  // The closed set of SQLSTATE classes with a series of their own; any other class (or a
  // malformed SQLSTATE) counts as kOtherErrorClass.
  static constexpr std::array<std::string_view, 7> kErrorClasses{"08", "0A", "28", "3D",
                                                                 "53", "57", "XX"};
  static constexpr std::string_view kOtherErrorClass = "other";

  // Creates every child (all error classes, both directions, each pin cause) at 0.
  ClientSeries(const MetricFamilies& families, std::string pool,
               std::span<const std::string_view> pin_causes);
  ~ClientSeries() override = default;

  // Removes every child from its family. Afterwards each method is a no-op, so a holder of
  // this handle cannot touch freed children or resurrect series.
  void detach();

  void client_connected() override;
  void client_disconnected() override;
  void client_error(std::string_view sqlstate) override;
  void client_pinned(std::string_view cause, int delta) override;
  void relayed(const RelayCounts& counts) override;

  // The error-class label `sqlstate` is counted under: one of kErrorClasses or "other".
  static std::string_view error_class(std::string_view sqlstate);
  // That of the class in kErrorClasses, or kErrorClasses.size() for "other".
  static std::size_t error_class_index(std::string_view sqlstate);

 private:
  const MetricFamilies families_;
  const std::string pool_;
  // Shared for recording (children are atomic themselves); exclusive for detach, which
  // frees them.
  mutable std::shared_mutex mutex_;
  bool detached_ = false;
  prometheus::Gauge& connections_;
  // Indexed like kErrorClasses; the last one is "other".
  std::array<prometheus::Counter*, kErrorClasses.size() + 1> errors_{};
  std::vector<std::pair<std::string_view, prometheus::Gauge*>> pinned_;  // by cause
  prometheus::Counter& transactions_;
  prometheus::Counter& queries_;
  prometheus::Counter& bytes_to_server_;
  prometheus::Counter& bytes_to_client_;
};

}  // namespace pgvigil::metrics
