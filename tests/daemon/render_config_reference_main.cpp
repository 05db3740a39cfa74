// Regenerates docs/config-reference.md from the key table; config_test fails until it is rerun.
#include <iostream>

#include "daemon/config_keys.hpp"

int main() {
  std::cout << pgvigil::daemon::render_config_reference();
  return 0;
}
