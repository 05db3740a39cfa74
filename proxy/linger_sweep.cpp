#include "proxy/linger_sweep.hpp"

#include <utility>

#include "proxy/client_session.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;

LingerSweep::LingerSweep(asio::execution_context& context)
    : asio::execution_context::service(context) {}

LingerSweep& LingerSweep::of(const std::shared_ptr<ClientSession>& session) {
  auto executor = session->stream_.get_executor();
  auto& sweep = asio::use_service<LingerSweep>(executor.context());
  if (!sweep.timer_) sweep.timer_ = std::make_unique<asio::steady_timer>(executor);
  // A dormant sweep (no session to watch) starts timing anew.
  if (!sweep.armed_) sweep.last_sweep_ = std::chrono::steady_clock::now();
  return sweep;
}

void LingerSweep::add(const std::shared_ptr<ClientSession>& session) {
  auto& sweep = of(session);
  sweep.sessions_.push_back(session);
  sweep.arm();
}

void LingerSweep::add_parked(const std::shared_ptr<ClientSession>& session) {
  auto& sweep = of(session);
  sweep.parked_.push_back(session);
  sweep.arm();
}

void LingerSweep::arm() {
  if (armed_ || (sessions_.empty() && parked_.empty())) return;
  armed_ = true;
  timer_->expires_after(kSweepPeriod);
  timer_->async_wait([this](boost::system::error_code ec) {
    armed_ = false;
    if (!ec) sweep();
  });
}

void LingerSweep::sweep() {
  // sweep_linger() may end in a cancel whose completion runs later, never inline, so the
  // vector is not touched while it is walked.
  // The real time since the last sweep: a busy worker sweeps late, and a stall is timed by the
  // clock, not by the count of sweeps.
  const auto now = std::chrono::steady_clock::now();
  const auto since_last =
      std::chrono::duration_cast<std::chrono::milliseconds>(now - last_sweep_);
  last_sweep_ = now;
  std::erase_if(sessions_, [since_last](const std::weak_ptr<ClientSession>& weak) {
    auto session = weak.lock();
    return !session || !session->sweep_linger(since_last);
  });
  since_parked_check_ += since_last;
  if (since_parked_check_ >= kParkedCheckPeriod) {
    const auto elapsed = std::exchange(since_parked_check_, std::chrono::milliseconds{0});
    std::erase_if(parked_, [elapsed](const std::weak_ptr<ClientSession>& weak) {
      auto session = weak.lock();
      return !session || !session->sweep_parked(elapsed);
    });
  }
  arm();
}

void LingerSweep::shutdown() {
  timer_.reset();
  sessions_.clear();
  parked_.clear();
}

}  // namespace pgvigil::proxy
