#pragma once
// The systemd notify protocol (sd_notify): READY=1, STATUS=, RELOADING=1, STOPPING=1 and the
// watchdog's WATCHDOG=1. Every call is a no-op when NOTIFY_SOCKET is unset, so pgvigil behaves
// the same outside systemd. Thread-safe (each call is one datagram).

#include <chrono>
#include <optional>
#include <string>

namespace pgvigil::daemon {

class ServiceNotifier {
 public:
  ServiceNotifier();

  bool enabled() const { return enabled_; }

  void ready();
  // Sent with MONOTONIC_USEC, as Type=notify-reload requires; ready() ends the reload.
  void reloading();
  void stopping();
  // One line; newlines are replaced, since the protocol is line-based.
  void status(const std::string& line);
  void watchdog();

  // How often systemd expects WATCHDOG=1 (WATCHDOG_USEC, for this process per WATCHDOG_PID);
  // nullopt when the watchdog is off. Send at half of it.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

 private:
  void send(const std::string& state);

  bool enabled_ = false;
  std::optional<std::chrono::microseconds> watchdog_;
};

}  // namespace pgvigil::daemon
