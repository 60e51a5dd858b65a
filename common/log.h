// One-line log records to stderr, which systemd routes to the journal. Under journald
// (JOURNAL_STREAM set) each line carries an sd-daemon "<N>" priority prefix so `journalctl -p`
// works. Never log secrets: messages are built from Status messages and metadata only.
#pragma once

#include <string_view>

namespace coffer {

enum class LogLevel { debug = 7, info = 6, warning = 4, error = 3 };

// Sets the minimum level printed (process-wide, set once at start-up).
void set_log_level(LogLevel level);
bool parse_log_level(std::string_view text, LogLevel& out);
void log(LogLevel level, std::string_view message);
// Whether log(level, ...) would write anything. Check it before building a message that costs
// something (string concatenation per request): a refusal flood must not pay for debug text
// that is then dropped.
bool log_enabled(LogLevel level);

inline void log_debug(std::string_view m) { log(LogLevel::debug, m); }
inline void log_info(std::string_view m) { log(LogLevel::info, m); }
inline void log_warning(std::string_view m) { log(LogLevel::warning, m); }
inline void log_error(std::string_view m) { log(LogLevel::error, m); }

}  // namespace coffer
