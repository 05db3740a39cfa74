#pragma once
// Log set-up: stderr, text by default (journald-friendly: with a <N> syslog priority prefix when
// stderr is connected to the journal, so levels survive), or one JSON object per line.

#include <string>

namespace pgvigil::daemon {

// level: trace|debug|info|warn|error; format: text|json. Both validated by the config.
void setup_logging(const std::string& level, const std::string& format);

}  // namespace pgvigil::daemon
