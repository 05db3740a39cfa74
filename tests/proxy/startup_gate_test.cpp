// StartupGate: connections that have not authenticated, bounded in all and per source address,
// the one that waited longest pushed out by a newer one.

#include "proxy/startup_gate.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace pgvigil::proxy {
namespace {

class StartupGateTest : public ::testing::Test {
 protected:
  // Admits a connection named `name` from `address`; its push-out is recorded in pushed_.
  StartupGate::Ticket admit(StartupGate& gate, const std::string& address,
                            const std::string& name) {
    return gate.admit(address, [this, name] { pushed_.push_back(name); });
  }
  std::vector<std::string> pushed_;
};

TEST_F(StartupGateTest, ANewConnectionOverTheBoundPushesOutTheOldest) {
  auto owner = std::make_shared<StartupGate>(3, 0);
  StartupGate& gate = *owner;
  auto a = admit(gate, "10.0.0.1", "a");
  auto b = admit(gate, "10.0.0.2", "b");
  auto c = admit(gate, "10.0.0.3", "c");
  EXPECT_TRUE(pushed_.empty());
  auto d = admit(gate, "10.0.0.4", "d");
  EXPECT_EQ(pushed_, std::vector<std::string>{"a"});
  EXPECT_EQ(gate.in_startup(), 3);
  EXPECT_EQ(gate.pushed_out(), 1u);
  a.leave();  // the pushed-out connection ends later: nothing more happens
  EXPECT_EQ(gate.in_startup(), 3);
}

TEST_F(StartupGateTest, AnAddressAtItsBoundPushesOutItsOwnOldestOnly) {
  auto owner = std::make_shared<StartupGate>(10, 2);
  StartupGate& gate = *owner;
  auto other = admit(gate, "10.0.0.9", "other");
  auto a = admit(gate, "10.0.0.1", "a");
  auto b = admit(gate, "10.0.0.1", "b");
  auto c = admit(gate, "10.0.0.1", "c");
  EXPECT_EQ(pushed_, std::vector<std::string>{"a"})
      << "not the older connection of another address";
  EXPECT_EQ(gate.in_startup(), 3);
}

TEST_F(StartupGateTest, LeavingGivesThePlaceBack) {
  auto owner = std::make_shared<StartupGate>(2, 0);
  StartupGate& gate = *owner;
  {
    auto a = admit(gate, "", "a");
    auto b = admit(gate, "", "b");
    b.leave();
    auto c = admit(gate, "", "c");
    EXPECT_TRUE(pushed_.empty());
    EXPECT_EQ(gate.in_startup(), 2);
  }
  EXPECT_EQ(gate.in_startup(), 0) << "tickets leave when destroyed";
  StartupGate::Ticket moved = admit(gate, "", "x");
  StartupGate::Ticket target = std::move(moved);
  moved.leave();  // moved-from: holds nothing
  EXPECT_EQ(gate.in_startup(), 1);
}

TEST_F(StartupGateTest, ZeroMeansNoBound) {
  auto owner = std::make_shared<StartupGate>(0, 0);
  StartupGate& gate = *owner;
  std::vector<StartupGate::Ticket> tickets;
  for (int i = 0; i < 500; ++i) tickets.push_back(admit(gate, "127.0.0.1", std::to_string(i)));
  EXPECT_TRUE(pushed_.empty());
  EXPECT_EQ(gate.in_startup(), 500);
}

TEST_F(StartupGateTest, PushedOutTicketsLeaveLaterWithoutTouchingTheOthersPlaces) {
  auto owner = std::make_shared<StartupGate>(3, 1);
  StartupGate& gate = *owner;
  auto a = admit(gate, "10.0.0.1", "a");
  auto b = admit(gate, "10.0.0.1", "b");  // the address's bound: a goes
  auto c = admit(gate, "10.0.0.2", "c");
  auto d = admit(gate, "10.0.0.3", "d");
  auto e = admit(gate, "10.0.0.4", "e");  // the total bound: b, the oldest left, goes
  EXPECT_EQ(pushed_, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(gate.in_startup(), 3);
  // The pushed-out connections end later, in any order: nothing changes.
  b.leave();
  a.leave();
  EXPECT_EQ(gate.in_startup(), 3);
  // 10.0.0.1 has nobody in startup any more: a new connection from it pushes out only the
  // oldest of all (c), for the total bound.
  auto f = admit(gate, "10.0.0.1", "f");
  EXPECT_EQ(pushed_, (std::vector<std::string>{"a", "b", "c"}));
  d.leave();
  e.leave();
  f.leave();
  c.leave();
  EXPECT_EQ(gate.in_startup(), 0);
  EXPECT_EQ(gate.pushed_out(), 3u);
  // Everyone gone: the address bounds start afresh.
  auto g = admit(gate, "10.0.0.1", "g");
  auto h = admit(gate, "10.0.0.2", "h");
  EXPECT_EQ(pushed_.size(), 3u);
  EXPECT_EQ(gate.in_startup(), 2);
}

TEST_F(StartupGateTest, APushedOutConnectionNoLongerCountsForItsAddress) {
  auto owner = std::make_shared<StartupGate>(0, 2);
  StartupGate& gate = *owner;
  auto a = admit(gate, "10.0.0.1", "a");
  auto b = admit(gate, "10.0.0.1", "b");
  auto c = admit(gate, "10.0.0.1", "c");  // over the address's bound: a goes
  EXPECT_EQ(pushed_, std::vector<std::string>{"a"});
  b.leave();
  // c alone is starting from 10.0.0.1 now (a was pushed out, b left): room for one more.
  auto d = admit(gate, "10.0.0.1", "d");
  EXPECT_EQ(pushed_, std::vector<std::string>{"a"});
  a.leave();
  EXPECT_EQ(gate.in_startup(), 2);
}

// A session still starting when the proxy goes (shutdown) holds the gate alive.
TEST_F(StartupGateTest, ATicketOutlivesTheGatesOwner) {
  auto owner = std::make_shared<StartupGate>(1, 0);
  auto ticket = admit(*owner, "", "a");
  std::weak_ptr<StartupGate> watched = owner;
  owner.reset();
  EXPECT_FALSE(watched.expired());
  ticket.leave();
  EXPECT_TRUE(watched.expired());
}

}  // namespace
}  // namespace pgvigil::proxy
