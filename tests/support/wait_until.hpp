#pragma once
// Polling with a deadline: the replacement for sleep() in tests. A test waits for the condition
// it cares about, so it is as fast as the system allows and fails clearly when it never happens.

#include <chrono>
#include <functional>

namespace pgvigil::testing {

// Calls predicate until it returns true (-> true) or timeout has passed (-> false). The predicate
// is always called at least once, and once more at the deadline, so a zero timeout still checks.
bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll_interval = std::chrono::milliseconds(20));

}  // namespace pgvigil::testing
