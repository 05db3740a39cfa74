#include "daemon/service_notifier.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>
#include <cstring>

namespace pgvigil::daemon {

ServiceNotifier::ServiceNotifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && socket[0] != '\0';
  if (!enabled_) return;
  std::uint64_t usec = 0;
  // > 0: enabled for this process (WATCHDOG_PID unset or ours).
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_ = std::chrono::microseconds(usec);
  }
}

void ServiceNotifier::send(const std::string& state) {
  if (!enabled_) return;
  const int result = sd_notify(0, state.c_str());
  if (result < 0) {
    spdlog::warn("sd_notify({}) failed: {}", state.substr(0, state.find('\n')),
                 std::strerror(-result));
  }
}

void ServiceNotifier::ready() { send("READY=1"); }

void ServiceNotifier::reloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000u +
                    static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void ServiceNotifier::stopping() { send("STOPPING=1"); }

void ServiceNotifier::status(const std::string& line) {
  std::string text = line;
  for (char& c : text) {
    if (c == '\n') c = ' ';
  }
  send("STATUS=" + text);
}

void ServiceNotifier::watchdog() { send("WATCHDOG=1"); }

}  // namespace pgvigil::daemon
