#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>

namespace coffer {
namespace {
std::atomic<int> g_min_level{static_cast<int>(LogLevel::info)};
std::mutex g_write_mutex;

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "info";
}
}  // namespace

void set_log_level(LogLevel level) { g_min_level = static_cast<int>(level); }

bool parse_log_level(std::string_view text, LogLevel& out) {
  if (text == "debug") out = LogLevel::debug;
  else if (text == "info") out = LogLevel::info;
  else if (text == "warning") out = LogLevel::warning;
  else if (text == "error") out = LogLevel::error;
  else return false;
  return true;
}

// Lower numbers are more severe (syslog order).
bool log_enabled(LogLevel level) { return static_cast<int>(level) <= g_min_level.load(std::memory_order_relaxed); }

void log(LogLevel level, std::string_view message) {
  if (!log_enabled(level)) return;
  static const bool journald = std::getenv("JOURNAL_STREAM") != nullptr;
  std::string line;
  if (journald) {
    line = "<" + std::to_string(static_cast<int>(level)) + ">";
  } else {
    char stamp[32];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    line = std::string(stamp) + " " + level_name(level) + ": ";
  }
  line.append(message);
  line.push_back('\n');
  std::lock_guard lock(g_write_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace coffer
