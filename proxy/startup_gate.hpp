#pragma once
// Bounds the client connections that have not authenticated yet, apart from the clients that
// have (listen.max_client_connections), so that silent or slow sockets cannot take the room of
// real clients. At most max_total connections are in startup at once, and at most
// max_per_address from one source address; a new connection over either bound pushes out the
// connection of that group that has waited longest (it gets 53300): a flood of silent sockets
// keeps recycling its own slots while a real client, whose startup takes milliseconds, gets
// through. Thread-safe: connections start on every accepting worker.

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace pgvigil::proxy {

class StartupGate : public std::enable_shared_from_this<StartupGate> {
  struct Waiting {
    std::string address;
    std::function<void()> push_out;
    bool pushed = false;  // pushed out: in pushed_, its push_out taken
  };
  using Order = std::list<Waiting>;

 public:
  StartupGate(int max_total, int max_per_address)
      : max_total_(max_total), max_per_address_(max_per_address) {}

  // Holds a connection's place while it starts up; leaving (authenticated, or gone) gives it back.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept { *this = std::move(other); }
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket() { leave(); }
    void leave();

   private:
    friend class StartupGate;
    // Shared: a session still in startup when the proxy is destroyed (at shutdown, with the
    // event loops) leaves a gate that is still there.
    std::shared_ptr<StartupGate> gate_;
    Order::iterator
        entry_;  // in the gate's order_, or in pushed_ once pushed out; valid with gate_
  };

  // A new connection from `address` ("" for the Unix socket: one group). The gate must be owned
  // by a shared_ptr. `push_out` is called
  // (from any thread, at most once, never inside admit's lock) if the connection is later pushed
  // out by a newer one; it must end the startup on the connection's own thread.
  Ticket admit(const std::string& address, std::function<void()> push_out);

  int in_startup() const;
  std::uint64_t pushed_out() const;  // connections pushed out so far

 private:
  void leave(Order::iterator entry);
  // One connection from `address` less in startup.
  void count_left(const std::string& address);
  // Pushes out the oldest connection of `address` ("*": of all) and returns its push_out.
  std::function<void()> take_oldest(const std::string* address);

  const int max_total_;
  const int max_per_address_;
  mutable std::mutex mutex_;
  Order order_;   // connections in startup, oldest first
  Order pushed_;  // pushed out, until their tickets leave: a splice keeps a ticket's entry valid
  std::map<std::string, int, std::less<>> per_address_;  // only with a per-address bound
  std::uint64_t pushed_out_ = 0;
};

}  // namespace pgvigil::proxy
